"""A restart that operators do not see: each peer takes up the state the history store
remembers (its status and since, whether its probe target answers, its counters, endpoint and
last handshake) and its machine goes on from there, as if it had never stopped. A down link
whose handshake is still young stays down; an up link stays up with its since. The first
change decided soon after the start happened while wgtrack was stopped (or as it started):
its event says so, once."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from wgtrack import link

if TYPE_CHECKING:
    from wgtrack.history.memory import Remembered
    from wgtrack.peers import PeerId, TrackedPeer

WHILE_STOPPED = "while wgtrack was stopped"


def _enum(kind: type[link.Status] | type[link.Target], value: str | None) -> link.Status | link.Target | None:
    try:
        return kind(value) if value is not None else None
    except ValueError:  # written by another version: start afresh
        return None


class Resumption:
    """The peers a start remembers, taken one by one as the first dump lists them; ``window_s``:
    how long after the start a first change still counts as one made while stopped (the time
    a first verdict takes: a probe, or a stale handshake)."""

    def __init__(self, remembered: Remembered, wall_offset: Callable[[], float], window_s: float) -> None:
        self.remembered = remembered
        self._first_expire: float | None = None
        self._wall_offset = wall_offset
        self.window_s = window_s
        # The peers marked (in the order seeded, so by time): an idle peer is never stepped
        # again, so settle never drops its mark; expire does.
        # The peer alone: its mark says when (a pair each was 0.6 MB at 10,000 peers).
        self._marked: deque[TrackedPeer] = deque()

    def seed(self, pid: PeerId, tracked: TrackedPeer, now: float) -> None:
        """A peer tracked again: its counters go on and its machine resumes."""
        row = self.remembered.take(pid)
        if row is None:
            return
        tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx = row.rx_base, row.tx_base, row.rx, row.tx
        status, target = _enum(link.Status, row.status), _enum(link.Target, row.target)
        if not isinstance(status, link.Status):
            return
        since = row.since - self._wall_offset()  # monotonic, as the machine keeps time
        tracked.state = link.make_state(
            status=status, since=since, latest_handshake=row.latest_handshake, endpoint=row.endpoint,
            target=target if isinstance(target, link.Target) else link.Target.UNPROVEN,
            down_since=since if status.is_down else 0.0, was_up=status.is_up,
            degraded=(row.degraded or "loss") if status is link.Status.DEGRADED else None)
        tracked.resumed = now  # one float for a cycle's peers: a tuple each was 1 MB at 10,000
        self._marked.append(tracked)

    def expire(self, now: float) -> None:
        """Drop the marks whose window has passed (called each cycle): what settle would do at
        the peer's next step, for the peers that have none. After a window, the peers still
        remembered and not listed are few: they are kept as plain objects."""
        marked, window_s = self._marked, self.window_s
        if self._first_expire is None:
            self._first_expire = now
        elif now - self._first_expire > window_s:
            self.remembered.keep_few()
        while marked:
            mark = marked[0].resumed
            if mark is not None and now - mark <= window_s:
                break
            marked.popleft().resumed = None  # its window has passed, or settle dropped it

    def settle(self, tracked: TrackedPeer, actions: list[link.Action], now: float) -> list[link.Action]:
        """A resumed peer's actions: its first change within the window is marked as made while
        stopped; after it, or after the window, the peer is like any other."""
        assert tracked.resumed is not None
        if now - tracked.resumed > self.window_s:
            tracked.resumed = None
            return actions
        kept: list[link.Action] = []
        for action in actions:
            if isinstance(action, link.Changed) and tracked.resumed is not None:
                tracked.resumed = None
                action = link.Changed(action.old, action.new, f"{action.reason}, {WHILE_STOPPED}", action.connected,
                                      (*action.details, ("while_stopped", 1)))
            kept.append(action)
        return kept
