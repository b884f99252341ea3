"""A restart that operators do not see: each peer takes up the state the history store
remembers (its status and since, its counters, its endpoint), and its first verdict after the
start is weighed against it. The same status (or the same side, up or down) is no change:
no event, no log line, and the since of before. Another side is a change that happened while
wgtrack was stopped: announced once, and saying so."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from wgtrack import link

if TYPE_CHECKING:
    from wgtrack.history.journal import PeerRow
    from wgtrack.peers import PeerId, TrackedPeer

# How long a resumed peer's first verdict may take (a probe, a handshake) before what it
# remembered no longer counts: its status then is the one it has.
RESUME_WINDOW_S = 300.0
WHILE_STOPPED = "while wgtrack was stopped"


def _side(status: link.Status | None) -> str | None:
    if status is None or status is link.Status.IDLE:
        return None
    return "up" if status.is_up else "down"


class Resumption:
    """The peers a start remembers, taken one by one as the first dump lists them."""

    def __init__(self, peers: dict[PeerId, PeerRow], wall_offset: Callable[[], float]) -> None:
        self._peers = peers
        self._wall_offset = wall_offset

    def seed(self, pid: PeerId, tracked: TrackedPeer, now: float) -> None:
        """A peer that is tracked again: its counters go on, its endpoint is known (a roam
        while stopped is seen), and its first verdict will be weighed."""
        row = self._peers.pop(pid, None)
        if row is None:
            return
        tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx = row.rx_base, row.tx_base, row.rx, row.tx
        tracked.state = link.LinkState(endpoint=row.endpoint)
        try:
            status = link.Status(row.status)
        except ValueError:
            return  # a status this version does not know: the peer starts afresh
        tracked.resumed = (status, row.since, row.degraded, now)

    def settle(self, tracked: TrackedPeer, actions: list[link.Action], now: float) -> list[link.Action]:
        """The actions of a resumed peer's step, its first verdict weighed against memory."""
        assert tracked.resumed is not None
        status, since, degraded, at = tracked.resumed
        if now - at > RESUME_WINDOW_S:
            tracked.resumed = None
            return actions
        kept: list[link.Action] = []
        for action in actions:
            if not isinstance(action, link.Changed) or tracked.resumed is None:
                kept.append(action)
            elif _side(action.new) is None and status is not link.Status.IDLE:
                kept.append(action)  # no verdict yet (idle until a probe answers): keep waiting
            else:
                tracked.resumed = None
                if _side(action.new) == _side(status):
                    tracked.state = self._as_before(tracked.state, status, since, degraded)
                else:
                    kept.append(link.Changed(status, action.new, f"{action.reason}, {WHILE_STOPPED}",
                                             action.connected, (*action.details, ("while_stopped", 1))))
        return kept

    def _as_before(self, state: link.LinkState, status: link.Status, since: float,
                   degraded: str | None) -> link.LinkState:
        """The state with the since of before (monotonic, as the machine keeps it); a degraded
        link stays degraded (its measures decide from here)."""
        changes: dict[str, object] = {"since": since - self._wall_offset()}
        if status is link.Status.DEGRADED and state.status is link.Status.UP:
            changes.update(status=status, degraded=degraded or "loss")
        return link.replace(state, **changes)

    def remaining(self) -> int:
        return len(self._peers)
