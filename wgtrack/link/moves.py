"""The one place a link's status changes: the table says to what, this makes the move and says so."""

from __future__ import annotations

from wgtrack.link import table
from wgtrack.link.messages import Action, Changed
from wgtrack.link.state import LinkState, is_down, replace
from wgtrack.link.table import Status, Verdict

Result = tuple[LinkState, list[Action]]


def move(state: LinkState, verdict: Verdict, now: float, reason: str, connected: bool = False,
         details: tuple[tuple[str, str | int | float], ...] = ()) -> Result:
    """The status ``verdict`` leads to from the peer's, as ``table.TRANSITIONS`` says, with a
    ``Changed`` when it is another. Leaving up:degraded for anything forgets its cause: a link
    that went down and came back is measured afresh."""
    new = table.lookup(state.status, verdict)
    if state.status is new:
        return state, []
    if new.is_down and not is_down(state):
        state = replace(state, down_since=now)
    if new.is_up and not state.was_up:
        state = replace(state, was_up=True)
    if new.is_up and not (state.status is not None and state.status.is_up):
        state = replace(state, mtu_at=-1e18, mtu_short=False)  # a session starts: its path is searched
    if new is not Status.DEGRADED:
        state = replace(state, degraded=None, health_since=None)
    return replace(state, status=new, since=now), [Changed(state.status, new, reason, connected, details)]
