"""The fast lane's schedule: the peers whose machine a ``Tick`` will move, by due time."""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wgtrack.peers import PeerId, TrackedPeer


class DueQueue:
    """A heap of (due time, peer). A peer's own ``due`` says which entry is current: an entry
    whose time is no longer the peer's (its state moved on, or it is gone) is skipped when it
    comes up, so rescheduling never searches the heap."""

    def __init__(self, peers: Mapping[PeerId, TrackedPeer]) -> None:
        self._peers = peers
        # (due, order of scheduling, peer): a hub's peers probed each second fall due at the
        # very same time, and ties compared the peer ids (5 % of the daemon's CPU in heappop)
        self._heap: list[tuple[float, int, PeerId]] = []
        self._order = 0

    def schedule(self, pid: PeerId, tracked: TrackedPeer, due: float) -> bool:
        """Set the peer's due time; True when it is a time to wake for (not inf, and new)."""
        if due == tracked.due:
            return False
        tracked.due = due
        if due == math.inf:
            return False
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, pid))
        return True

    def ready(self, now: float, limit: int | None = None) -> list[tuple[PeerId, TrackedPeer]]:
        """The peers due by ``now`` (at most ``limit``), taken out (their due time reset): a step
        may schedule them for now again."""
        heap, peers = self._heap, self._peers
        found: list[tuple[PeerId, TrackedPeer]] = []
        while heap and heap[0][0] <= now and (limit is None or len(found) < limit):
            when, _, pid = heapq.heappop(heap)
            tracked = peers.get(pid)
            if tracked is not None and tracked.due == when:
                tracked.due = math.inf
                found.append((pid, tracked))
        if len(heap) > 4 * len(peers) + 1024:  # many stale entries: start the heap afresh
            self._heap = [(t.due, n, pid) for n, (pid, t) in enumerate(peers.items()) if t.due < math.inf]
            heapq.heapify(self._heap)
        return found

    def next_due(self) -> float:
        """When the next peer is due (inf: none)."""
        heap, peers = self._heap, self._peers
        while heap:
            when, _, pid = heap[0]
            tracked = peers.get(pid)
            if tracked is not None and tracked.due == when:
                return when
            heapq.heappop(heap)  # stale: gone, or its schedule moved on
        return math.inf
