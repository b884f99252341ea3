"""The fast lane's schedule: due order, stale entries skipped, and a limit per call."""

from __future__ import annotations

import math

from wgtrack.duequeue import DueQueue
from wgtrack.peers import PeerId, TrackedPeer


def _queue(count: int) -> tuple[DueQueue, dict[PeerId, TrackedPeer]]:
    peers: dict[PeerId, TrackedPeer] = {("wg0", f"k{i}"): TrackedPeer() for i in range(count)}
    queue = DueQueue(peers)
    for i, (pid, tracked) in enumerate(peers.items()):
        queue.schedule(pid, tracked, float(i))
    return queue, peers


def test_ready_takes_due_peers_in_order_and_resets_them() -> None:
    queue, _ = _queue(5)
    found = queue.ready(2.0)
    assert [pid for pid, _ in found] == [("wg0", "k0"), ("wg0", "k1"), ("wg0", "k2")]
    assert all(t.due == math.inf for _, t in found)
    assert queue.next_due() == 3.0


def test_ready_with_a_limit_leaves_the_rest_due() -> None:
    # a hub's peers probed each second fall due together: the fast lane takes them in parts
    queue, _ = _queue(1000)
    first = queue.ready(1e9, limit=250)
    assert len(first) == 250 and first[-1][0] == ("wg0", "k249")
    assert queue.next_due() == 250.0
    rest = [pid for part in iter(lambda: queue.ready(1e9, limit=250), []) for pid, _ in part]
    assert len(rest) == 750 and queue.next_due() == math.inf


def test_a_rescheduled_peer_is_taken_at_its_new_time_only() -> None:
    queue, peers = _queue(3)
    pid = ("wg0", "k0")
    queue.schedule(pid, peers[pid], 10.0)  # its entry at 0.0 is now stale
    assert [p for p, _ in queue.ready(5.0)] == [("wg0", "k1"), ("wg0", "k2")]
    assert [p for p, _ in queue.ready(10.0)] == [pid]
