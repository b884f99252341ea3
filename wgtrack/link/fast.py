"""The fast paths: what the full step would do, answered without running it.

A hub steps 50,000 peers; most of them change nothing from cycle to cycle. These answer, from
the same rules and the same table, whether a peer can be skipped (``unchanged``, ``timeless``)
and when the fast lane next needs it (``tick_due``). Property tests in tests/test_link.py hold
each to the full step, and fail when one disagrees.
"""

from __future__ import annotations

import math

from wgtrack.link.rules import judge
from wgtrack.link.settings import DOWN_FAST_S, DOWN_PROBE_CAP_S, UNDERLAY_PERIOD_S, LinkSettings, stale_limit
from wgtrack.link.state import LinkState, in_lane, is_down, lane_target, probes_decide, probing, session
from wgtrack.link.table import TRANSITIONS, Status, Verdict


def unchanged(state: LinkState, wall: float, now: float, settings: LinkSettings) -> bool:
    """True when a sample equal to the last one but for its time (the peer's dump line did not
    change) would leave the state as it is and ask for nothing. The tracker then skips the peer
    without building a sample."""
    s = state.last_sample
    status = state.status
    if s is None or status is None or s.hostname is not None or state.endpoint != s.endpoint \
            or state.latest_handshake != s.latest_handshake or state.rx_bytes != s.rx_bytes:
        return False
    is_probing = probing(s, settings)
    if is_probing and not in_lane(state, settings):
        return False  # the cycle probes it: probes count cycles
    # A pending knock is cleared by a session (a handshake younger than SESSION_S).
    if state.knock_since is not None and session(s.latest_handshake, wall):
        return False
    verdict, _ = judge(state, s, wall, now, settings, False, False, probes_decide(state, settings, s.probe_target),
                       is_probing, False)
    # ALIVE restarts the schedule: never a no-op to vouch for.
    if verdict is Verdict.ALIVE or TRANSITIONS.get((status, verdict)) is not status:
        return False
    if status.is_down:
        return not (settings.underlay_probe and s.endpoint and now - state.underlay_probe_at >= UNDERLAY_PERIOD_S)
    return state.diagnosis is None and state.underlay_probe_at == -1e18


def timeless(state: LinkState, wall: float, now: float, settings: LinkSettings) -> bool:
    """``unchanged`` now and at any later time: nothing in the rules depends on the clock for
    this peer any more (no keepalive, no handshake or one past the stale limit, which only
    grows older, no knock waiting for its handshake, no underlay probe to come). The tracker
    then leaves it alone until its line, its settings or its state change."""
    s = state.last_sample
    if s is None or s.keepalive_s or state.knock_since is not None or not unchanged(state, wall, now, settings):
        return False  # a pending knock goes down once KNOCK_GRACE_S have passed
    hs = s.latest_handshake
    if hs and wall - hs <= stale_limit(settings, 0):
        return False
    return not (is_down(state) and settings.underlay_probe and s.endpoint)


def tick_due(state: LinkState, settings: LinkSettings) -> float:
    """The monotonic time from which a ``Tick`` asks for a probe (``inf``: time alone never
    will). The daemon's fast lane keeps peers in a heap by it instead of looking at every down
    peer four times a second."""
    if lane_target(state, settings) is None:
        return math.inf
    # Never probed (last_probe_at is -1e18): due at once, that is when its status began.
    last = max(state.last_probe_at, state.since - 1e9)
    if not is_down(state):
        return max(last + settings.probe_interval_s, state.since) if settings.probe_interval_s > 0 else math.inf
    gap = settings.down_probe_interval_s
    if gap <= 0:
        return math.inf
    since = state.down_since
    first = last + gap
    if state.was_up and first - since <= DOWN_FAST_S:
        return max(first, state.since)  # within the first minute down: every gap
    # Then the gap is a quarter of the time down, at most DOWN_PROBE_CAP_S (never below gap):
    # t - last >= (t - since) / 4 while that quarter is under the cap, else t - last >= cap.
    quarter = max(first, (4 * last - since) / 3, state.since)
    if quarter - since <= 4 * DOWN_PROBE_CAP_S:
        return quarter
    return max(last + max(gap, DOWN_PROBE_CAP_S), since + 4 * DOWN_PROBE_CAP_S)


def urgent(state: LinkState, now: float) -> bool:
    """Whether this link's probes go first when probes wait: it is up, or it went down from up
    within DOWN_FAST_S (its fast minute). Never-up, long-down, new and idle links wait: each of
    their probes makes WireGuard retry a handshake with an address that may be dead."""
    status = state.status
    if status is Status.UP or status is Status.DEGRADED:
        return True
    return status is not None and status.is_down and state.was_up and now - state.down_since <= DOWN_FAST_S
