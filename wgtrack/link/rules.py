"""The rules that turn evidence into a ``Verdict``: what a dump sample says of a link, and where
a dead link with a hostname stands in 0.2.0's re-resolution schedule.

Shared by the full step (``machine``) and the fast paths (``fast``), so a fast path cannot
drift from the rules: it asks them, and looks their verdict up in the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wgtrack.link.settings import (
    DOWN_FAST_S,
    DOWN_PROBE_CAP_S,
    HANDSHAKE_MARGIN_S,
    KNOCK_GRACE_S,
    SESSION_S,
    LinkSettings,
)
from wgtrack.link.table import Status, Verdict

if TYPE_CHECKING:
    from wgtrack.link.messages import Sample
    from wgtrack.link.state import LinkState


def judge(state: LinkState, s: Sample, wall: float, now: float, settings: LinkSettings, fresh: bool,
          rx_grew: bool, decide: bool, probing: bool, explain: bool = True) -> tuple[Verdict, str]:
    """The rules in order (docs/link-state.md), after the probe bookkeeping: what a sample taken
    at ``wall`` says, as (verdict, reason). ``explain`` off skips the reason (the fast path)."""
    hs = s.latest_handshake
    age = max(0.0, wall - hs) if hs else None
    limit = settings.handshake_timeout_s + s.keepalive_s + HANDSHAKE_MARGIN_S  # stale_limit, inlined: hot
    status = state.status
    is_down = status is not None and status.is_down
    if fresh:
        return Verdict.ALIVE, "new handshake"
    if decide and state.probe_failures >= settings.ping_failafternum:
        return Verdict.DEAD, f"{state.probe_failures} probes failed" if explain else ""
    knock = state.knock_since
    if not decide and knock is not None and now - knock >= KNOCK_GRACE_S:
        return Verdict.DEAD, f"no handshake completed {now - knock:.0f} s after our probe" if explain else ""
    if rx_grew and age is not None and age < SESSION_S and not decide and not is_down:
        return Verdict.ALIVE, "rx grew"
    if age is not None and age <= limit and not is_down:
        # A young handshake keeps a link up, but only a new one brings a down link back: a
        # blackholed link keeps its last handshake for up to three minutes.
        return Verdict.FRESH, f"handshake {age:.0f} s old" if explain else ""
    if s.keepalive_s and (age is not None or now - (state.first_seen or now) > limit):
        # With keepalive a live link renews its handshake; an old or absent one is a dead link.
        if not explain:
            return Verdict.DEAD, ""
        what = f"handshake {age:.0f} s old" if age is not None else "no handshake"
        return Verdict.DEAD, f"{what} despite keepalive {s.keepalive_s} s"
    if probing:
        if status is None:
            return Verdict.NO_EVIDENCE, "awaiting first probe"
        return (Verdict.DEAD, "still no reply") if is_down else (Verdict.UNDECIDED, "")
    return Verdict.NO_EVIDENCE, "no traffic and no probes: no evidence either way"


def schedule_verdict(state: LinkState, s: LinkSettings) -> Verdict:
    """Where a dead link with a hostname stands, counted in quiet cycles since its last
    evidence of life: waiting for ``cycles_wait``; then checking for ``cycles_checking``; then
    backing off, until the interval reaches ``cycles_slowcheckingperiod``."""
    q = state.quiet_cycles
    if q < s.cycles_wait:
        return Verdict.DEAD_WAIT
    if q < s.cycles_wait + s.cycles_checking:
        return Verdict.DEAD_CHECK
    backoff = state.backoff_cycles or min(2 * s.cycles_checkperiod, s.cycles_slowcheckingperiod)
    return Verdict.DEAD_SLOW if backoff >= s.cycles_slowcheckingperiod else Verdict.DEAD_BACKOFF


def down_gap(down_for: float, interval: float, was_up: bool) -> float:
    """Seconds between probes of a down peer: ``interval`` for its first minute (if it was ever
    up: a hub's departed peers, down since wgtrack started, get no such minute), then a
    quarter of the time down, at most DOWN_PROBE_CAP_S (``tick_due`` solves the same rule)."""
    if was_up and down_for <= DOWN_FAST_S:
        return interval
    return max(interval, min(DOWN_PROBE_CAP_S, down_for / 4))


def cycles_to_next_resolve(state: LinkState, s: LinkSettings) -> int | None:
    """Cycles until the next re-resolution is due (0 = this cycle); None when none is planned."""
    q = state.quiet_cycles
    if state.status is Status.WAITING:
        return max(0, s.cycles_wait - q)
    if state.status is Status.CHECKING:
        if q + 1 >= s.cycles_wait + s.cycles_checking:
            return None if state.next_resolve_at < 0 else max(0, state.next_resolve_at - q)
        return (s.cycles_checkperiod - (q - s.cycles_wait) % s.cycles_checkperiod) % s.cycles_checkperiod
    if state.status in (Status.BACKINGOFF, Status.SLOWCHECKING):
        return max(0, state.next_resolve_at - q)
    return None
