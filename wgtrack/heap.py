"""The daemon's memory, as the C library and the collector see it: what a big hub keeps for good
is put out of the collector's sight, and what each cycle used for a moment is given back.

The collector's full collections are the daemon's own. Probing 10,000 peers a second, each
step's new state lives a second: long enough to outlive two young collections, so it reached
the oldest generation, and the collector's rule (a full collection once a quarter as many
objects as it holds were added) ran one every 0.8 s, each walking every live peer's state for
60-140 ms on the loop, 13 % of a core in all (with the young ones), and none of them ever
found garbage: the daemon makes no reference cycles once it runs. So the automatic full
collection is off, and every cycle freezes what survived (an O(1) move). What is frozen is
freed as usual when its count drops; only garbage cycles would stay, and the frozen count
says when they might: should it double (a hub that grew, or a leak), one full collection
puts things right, logged with what it took.

On a 10,000-peer hub (measured in-process, docs/scale.md) glibc's per-thread arenas cost the
daemon 2.4 MB of RSS: each worker thread that allocates gets an arena of its own, and the
memory freed there stays with it. One arena for all threads costs nothing here, since the GIL
serialises nearly all allocation anyway.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import math
import time

M_ARENA_MAX = -8  # glibc's malloc.h
# Young collections: one per this many net allocations (CPython's 700 made 90 a second at
# 10,000 echoes a second, each finding nothing); the oldest generation is never collected on
# its own (its threshold is out of reach), only by HeapUpkeep.
YOUNG_THRESHOLD = 20_000
NEVER = 2**30
# A full collection when the frozen objects are twice as many as after the last one, and more
# by this many at least (a small hub's few thousand must not make it run often).
SETTLE_SLACK = 200_000
COUNT_EVERY_S = 60.0  # the frozen count walks the list (3 ms for 400,000 objects): not every cycle

log = logging.getLogger(__name__)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # glibc only


def one_arena() -> bool:
    """All threads allocate from the main arena. Call before any thread starts."""
    libc = _libc()
    return libc is not None and libc.mallopt(M_ARENA_MAX, 1) == 1


def tune_collector() -> None:
    """Young collections rarer, and no automatic full collection (HeapUpkeep runs them)."""
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, NEVER)


def settle_young() -> None:
    """What survived since the last freeze put out of the young collections' way (``gc.freeze()``
    is O(1): a few list splices). Called between the parts of the fast lane's steps. The young
    count is allocations minus deallocations, so while each probe's new state replaces a frozen
    old one the count stays low and the young list grows with the survivors: at 10,000 echoes a
    second, young collections came late and walked seconds of them, 13-53 ms each on the loop,
    finding nothing. Frozen garbage, should there be any, is HeapUpkeep's to collect."""
    gc.freeze()


class HeapUpkeep:
    """The collector and glibc kept in step with the daemon, from the cycle:
    - ``gc.freeze()`` between the parts of a big first dump's stepping (no full collection
      walks tens of thousands of new peers on the loop: 120-230 ms stalls at 50,000), and after
      every cycle (what survived it is out of the young collections' way);
    - one full collection when the frozen count has doubled since the last (looked at once per
      ``count_every_s``): the only full collections there are (``tune_collector``);
    - ``malloc_trim`` after every cycle: a cycle's big buffers (the dump's bytes and text, the
      rendered file, the sets of line hashes) come from the heap once glibc's moving mmap
      threshold has risen past them, and leave free pages in its middle, which glibc keeps
      unless asked (measured at 5,000 peers: 1 MB of RSS; the call takes 0.1-0.2 ms at 10,000)."""

    def __init__(self, after_added: int, slack: int = SETTLE_SLACK, count_every_s: float = COUNT_EVERY_S) -> None:
        self.after_added, self.slack, self.count_every_s = after_added, slack, count_every_s
        self._settled_at = 0  # peers added when it last settled
        self._frozen_after_full = 0  # gc.get_freeze_count() after the last full collection
        self._counted_at = -math.inf  # time.monotonic() of the last count
        self._libc = _libc()

    def added(self, added: int) -> None:
        """Called between the parts of a cycle's stepping with the count of peers added so far:
        a big first dump is frozen as it goes, so that no full collection walks all of its peers
        on the event loop (measured at 50,000 peers: three of 120-230 ms in the first cycle)."""
        if added - self._settled_at >= self.after_added:
            self._settled_at = added
            gc.freeze()  # what is garbage among them now is kept for good: a one-off, bounded cost

    def cycle_done(self, added: int) -> None:
        """Called after each cycle with the count of peers added so far."""
        self.added(added)
        gc.freeze()  # what survived the cycle: out of the young collections' way
        self._full_if_grown()
        if self._libc is not None:
            self._libc.malloc_trim(0)

    def _full_if_grown(self) -> None:
        """A full collection when the frozen objects doubled (bounded memory even if something
        made garbage cycles), logged with what it freed."""
        now = time.monotonic()
        if now - self._counted_at < self.count_every_s:
            return
        self._counted_at = now
        frozen = gc.get_freeze_count()
        if frozen <= 2 * self._frozen_after_full + self.slack:
            return
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self._frozen_after_full = gc.get_freeze_count()
        log.info("full garbage collection: %d objects kept, %d freed, %.0f ms (the kept ones had doubled)",
                 self._frozen_after_full, freed, (time.perf_counter() - started) * 1000)
