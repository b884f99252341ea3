"""The daemon's memory, as the C library and the collector see it: what a big hub keeps for good
is put out of the collector's sight, and what each cycle used for a moment is given back.

On a 10,000-peer hub (measured in-process, docs/scale.md) glibc's per-thread arenas cost the
daemon 2.4 MB of RSS: each worker thread that allocates gets an arena of its own, and the
memory freed there stays with it. One arena for all threads costs nothing here, since the GIL
serialises nearly all allocation anyway.
"""

from __future__ import annotations

import ctypes
import gc

M_ARENA_MAX = -8  # glibc's malloc.h


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


class HeapUpkeep:
    """Whenever many peers were added (a big hub's first dump), ``gc.freeze()`` between the
    parts of the stepping (full collections stop walking tens of thousands of long-lived peers:
    about 10 ms a cycle at 10,000, and 120-230 ms stalls of the first cycle's loop at 50,000).
    After every cycle, ``malloc_trim``: a cycle's big buffers (the dump's bytes and text, the
    rendered file, the sets of line hashes) come from the heap once glibc's moving mmap
    threshold has risen past them, and leave free pages in its middle, which glibc keeps unless
    asked (measured at 5,000 peers: 1 MB of RSS; the call takes 0.1-0.2 ms at 10,000)."""

    def __init__(self, after_added: int) -> None:
        self.after_added = after_added
        self._settled_at = 0  # peers added when it last settled
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
        if self._libc is not None:
            self._libc.malloc_trim(0)
