"""The per-peer link state machine: pure, no I/O, time passed in.

``step(state, observation, now, settings)`` returns the next state and the actions the caller
must carry out. Each handler asks the rules (``rules``) for a verdict and looks the status that
follows up in the table (``table.TRANSITIONS``); it never picks a status itself.

Only evidence that crossed the tunnel both ways revokes a down verdict: a probe reply or a
completed handshake. rx growth is one-way (a peer whose answers we never get still sends
keepalives and handshake initiations), so it counts only where probes cannot decide, only
while a session exists, and never brings a down link back. tx is never evidence.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from wgtrack.link import mtu
from wgtrack.link.endpoints import on_resolve, on_set
from wgtrack.link.health import on_measured
from wgtrack.link.messages import (
    Action,
    Diagnosed,
    Measured,
    MtuResult,
    Observation,
    Probe,
    ProbeResult,
    ProbeUnderlay,
    Resolve,
    ResolveResult,
    Roamed,
    Sample,
    Seen,
    TargetVerdict,
    Tick,
    UnderlayResult,
    same_reading,
)
from wgtrack.link.moves import move as _move
from wgtrack.link.rules import down_gap, judge, schedule_verdict
from wgtrack.link.settings import DOWN_FAST_S, DOWN_PROBE_CAP_S, UNDERLAY_PERIOD_S, LinkSettings
from wgtrack.link.state import (
    LinkState,
    copy_with,
    in_lane,
    is_down,
    lane_target,
    probes_decide,
    probing,
    replace,
    session,
)
from wgtrack.link.table import Status, Target, Verdict
from wgtrack.model import split_endpoint

Result = tuple[LinkState, list[Action]]

# What evidence of life starts over: the whole re-resolution schedule, and a pending knock.
_LIFE_RESETS: dict[str, Any] = {"quiet_cycles": 0, "resolves": 0, "last_resolve_at": -1, "next_resolve_at": -1,
                                "backoff_cycles": 0, "knock_since": None}
_life_fields, _LIFE_VALUES = attrgetter(*_LIFE_RESETS), tuple(_LIFE_RESETS.values())


def _alive(state: LinkState, now: float, reason: str, handshake: bool = False) -> Result:
    """Evidence of life: up, and the whole re-resolution schedule starts over. A completed
    handshake of an idle peer is a connection, which operators hear of."""
    # An unproven target's failures still count towards declaring it silent.
    failures = state.probe_failures if state.target is Target.UNPROVEN else 0
    state = replace(state, probe_failures=failures, **_LIFE_RESETS)
    return _move(state, Verdict.ALIVE, now, reason, connected=handshake and state.status is Status.IDLE)


def _down(state: LinkState, now: float, reason: str, settings: LinkSettings) -> Result:
    """Dead: plain ``down``, or the re-resolution schedule for a hostname peer. A pending knock
    has done its work: kept, it would hold a dead peer among those the clock moves
    (``timeless``), and a hub's thousands of departed peers would be looked at every cycle."""
    if state.knock_since is not None:
        state = replace(state, knock_since=None)
    sample = state.last_sample
    if sample is None or sample.hostname is None:
        return _move(state, Verdict.DEAD, now, reason)
    return _schedule(state, now, reason, settings, sample)


def _schedule(state: LinkState, now: float, reason: str, s: LinkSettings, sample: Sample) -> Result:
    """0.2.0's schedule, counted from the last evidence of life (the probes already waited):
    re-resolving every ``cycles_checkperiod`` while checking, then at back-off gaps from
    2 × checkperiod, doubling up to ``cycles_slowcheckingperiod``. Each back-off gap is
    shortened by up to a quarter at random, so it never exceeds the cap."""
    q = state.quiet_cycles
    period, cap = s.cycles_checkperiod, s.cycles_slowcheckingperiod
    verdict = schedule_verdict(state, s)
    if verdict is Verdict.DEAD_WAIT:
        due = False
    elif verdict is Verdict.DEAD_CHECK:
        due = state.resolves == 0 or (q - s.cycles_wait) % period == 0
    else:
        if state.backoff_cycles == 0:
            state = replace(state, backoff_cycles=min(2 * period, cap), next_resolve_at=q if state.resolves == 0
                            else max(state.last_resolve_at, 0) + min(2 * period, cap))
        due = q >= state.next_resolve_at
    state, actions = _move(state, verdict, now, reason)
    if due and not state.resolving and q != state.last_resolve_at:
        state = replace(state, resolves=state.resolves + 1, last_resolve_at=q, resolving=True)
        actions.append(Resolve(sample.hostname or ""))
        if verdict in (Verdict.DEAD_BACKOFF, Verdict.DEAD_SLOW):
            backoff = min(2 * state.backoff_cycles, cap) if state.resolves > 1 else state.backoff_cycles
            gap = backoff - int(sample.rand * (backoff // 4 + 1))
            state = replace(state, next_resolve_at=q + max(1, gap), backoff_cycles=backoff)
    return state, actions


def _roamed(state: LinkState, endpoint: str | None) -> list[Action]:
    """The endpoint changed and wgtrack did not change it: the peer moved."""
    if state.endpoint is not None and endpoint is not None and endpoint != state.endpoint \
            and endpoint != state.setting_endpoint:
        return [Roamed(state.endpoint, endpoint)]
    return []


def _cycle_probe(state: LinkState, s: Sample, now: float, settings: LinkSettings) -> Result:
    """Probe every ping_interval cycles while up; while down (with the fast lane off) every
    cycle at first, so that recovery is seen at once (each probe also makes WireGuard retry its
    handshake), then backing off (DOWN_FAST_S)."""
    if is_down(state):
        down_for = now - state.down_since
        due = (state.was_up and down_for <= DOWN_FAST_S) \
            or now - state.last_probe_at >= min(DOWN_PROBE_CAP_S, down_for / 4)
    elif settings.probe_interval_s > 0:  # on its own clock: the fast lane also probes
        due = now - state.last_probe_at >= settings.probe_interval_s or state.probe_failures > 0
    else:
        due = state.cycles_to_probe <= 0 or state.probe_failures > 0
    if due:
        return (replace(state, cycles_to_probe=settings.ping_interval - 1, last_probe_at=now),
                [_probe(state, s.probe_target or "", settings)])
    return replace(state, cycles_to_probe=state.cycles_to_probe - 1), []


def _on_sample(state: LinkState, s: Sample, now: float, settings: LinkSettings) -> Result:
    fresh = s.latest_handshake > state.latest_handshake and state.first_seen is not None
    rx_grew = 0 <= state.rx_bytes < s.rx_bytes
    is_probing = probing(s, settings)
    lane = in_lane(state, settings)  # a down peer's probes are the fast lane's (Tick)
    previous = state.last_sample
    actions = _roamed(state, s.endpoint)
    if previous is not None and previous.probe_target != s.probe_target:
        # A new target has shown nothing yet; neither has the old one's silence any meaning.
        state = replace(state, target=Target.UNPROVEN, probe_failures=0)
    # Time alone is no news for a peer that is neither probed nor re-resolved: it keeps its
    # last sample (whose time nothing reads) and counts no quiet cycles (only the re-resolution
    # schedule does), so that an unchanged reading leaves its state as it was.
    keep_previous = previous is not None and (not is_probing or lane) and s.hostname is None \
        and same_reading(previous, s)
    state = replace(
        state,
        latest_handshake=s.latest_handshake,
        rx_bytes=s.rx_bytes,
        first_seen=now if state.first_seen is None else state.first_seen,
        endpoint=s.endpoint,
        quiet_cycles=state.quiet_cycles + 1 if s.hostname is not None else state.quiet_cycles,
        last_sample=previous if keep_previous else s,
        sampled_at=state.sampled_at if keep_previous else now,
        knock_since=None if session(s.latest_handshake, s.wall) else state.knock_since,
    )
    if is_probing and not lane:
        state, probe = _cycle_probe(state, s, now, settings)
        actions += probe
    decide = probes_decide(state, settings, s.probe_target)
    if fresh and decide and state.probe_failures > 0:
        state, fresh, decide = _handshake_while_failing(state, s, settings)
    verdict, why = judge(state, s, s.wall, now, settings, fresh, rx_grew, decide, is_probing)
    if verdict is Verdict.ALIVE:
        state, changed = _alive(state, now, why, handshake=fresh)
    elif verdict is Verdict.DEAD:
        state, changed = _down(state, now, why, settings)
    else:
        state, changed = _move(state, verdict, now, why)
    state, underlay = _underlay_due(state, s, now, settings)
    state, search = mtu.due(state, s, now, settings)
    return state, actions + changed + underlay + search


def _handshake_while_failing(state: LinkState, s: Sample, settings: LinkSettings) -> tuple[LinkState, bool, bool]:
    """A new handshake while probes to an answering target fail: (state, fresh, decide)."""
    if s.latest_handshake <= state.failing_since:
        return state, False, True  # it completed before the failures: no news of the link now
    if state.probe_failures < settings.ping_failafternum:
        return state, True, True  # the link works: the failure was loss
    # Completed after our probes went unanswered: the link works, the target does not answer.
    # Announced only if the next probe fails too: at the end of an outage the handshake often
    # lands just before the first reply, and that is no silent target.
    reason = f"{state.probe_failures} probes unanswered while a handshake completed"
    return replace(state, target=Target.SILENT, probe_failures=0, silence_reason=reason), True, False


def _underlay_due(state: LinkState, s: Sample, now: float, settings: LinkSettings) -> Result:
    """While down, with ``underlay_probe``: ping the endpoint's own address at most once per
    UNDERLAY_PERIOD_S (it goes outside the tunnel, to the peer's public address); up again, the
    diagnosis is dropped."""
    if not is_down(state):
        if state.diagnosis is not None or state.underlay_probe_at > -1e18:
            state = replace(state, diagnosis=None, underlay_probe_at=-1e18)
        return state, []
    if not settings.underlay_probe or not s.endpoint or now - state.underlay_probe_at < UNDERLAY_PERIOD_S:
        return state, []
    try:
        address = split_endpoint(s.endpoint)[0].split("%", 1)[0]
    except ValueError:
        return state, []
    return replace(state, underlay_probe_at=now), [ProbeUnderlay(address)]


def _on_tick(state: LinkState, now: float, settings: LinkSettings) -> Result:
    """The fast lane: a down peer is probed every ``down_probe_interval`` seconds for its first
    minute down (DOWN_FAST_S), then less often (a quarter of the time down, at most every
    DOWN_PROBE_CAP_S), whatever the cycle: a heal is seen within a second or so at any
    cycle_time. Only where a probe is possible (a target, an endpoint, probes on)."""
    target = lane_target(state, settings)
    if target is None:
        return state, []
    if not is_down(state):
        # probe_interval: up (and idle) peers on their own clock too, so a break is seen in seconds
        if settings.probe_interval_s > 0 and now - state.last_probe_at >= settings.probe_interval_s:
            # (surely another time: no compare of the whole state, as replace() makes)
            return copy_with(state, last_probe_at=now), [_probe(state, target, settings)]
        return state, []
    if settings.down_probe_interval_s <= 0:
        return state, []
    if now - state.last_probe_at < down_gap(now - state.down_since, settings.down_probe_interval_s, state.was_up):
        return state, []
    return replace(state, last_probe_at=now), [Probe(target)]


def _on_seen(state: LinkState, s: Seen, now: float) -> Result:
    """A handshake between cycles: up at once. A roam is news too. Where probes to an
    answering target are failing, what the handshake means (a silent target?) is for the
    cycle's Sample to decide, so it is left unread."""
    if state.status is None:
        return state, []  # not yet introduced by a cycle
    actions = _roamed(state, s.endpoint)
    if s.endpoint is not None:
        state = replace(state, endpoint=s.endpoint)
    if s.latest_handshake <= state.latest_handshake or (state.probe_failures > 0 and state.target is Target.ANSWERS):
        return state, actions
    state = replace(state, latest_handshake=s.latest_handshake)
    state, changed = _alive(state, now, "new handshake", handshake=True)
    return state, actions + changed


def _on_underlay(state: LinkState, r: UnderlayResult) -> Result:
    if not is_down(state):
        return state, []  # up again meanwhile: nothing to explain
    cause = "tunnel_only" if r.ok else "host_unreachable"
    if cause == state.diagnosis:
        return state, []
    return replace(state, diagnosis=cause), [Diagnosed(cause, r.address)]


def steady_answer(state: LinkState, r: ProbeResult) -> bool:
    """A reply from a link up and well, its target answering, nothing pending: what ``_on_probe``
    makes of it moves only the measures."""
    return r.ok and state.status in _UP_STATUSES and state.target is Target.ANSWERS and not state.silence_reason \
        and not state.probe_failures and _life_fields(state) == _LIFE_VALUES


_UP_STATUSES = (Status.UP, Status.DEGRADED)


def _on_probe(state: LinkState, r: ProbeResult, now: float, settings: LinkSettings) -> Result:
    if steady_answer(state, r):
        # Nearly every reply on a hub probed each second: the full step below would give the
        # same (tests/test_link.py holds them equal) at three times the cost.
        same = state.rtt_ms == r.rtt_ms and state.loss == r.loss
        return (state if same else copy_with(state, rtt_ms=r.rtt_ms, loss=r.loss)), []
    return on_probe_in_full(state, r, now, settings)


def on_probe_in_full(state: LinkState, r: ProbeResult, now: float, settings: LinkSettings) -> Result:
    """A probe's result, whatever the state (``_on_probe`` takes a short way for a steady reply)."""
    state = replace(state, rtt_ms=r.rtt_ms, loss=r.loss)
    sample = state.last_sample
    target = sample.probe_target if sample else None
    if not r.ok and state.knock_since is None and not (sample and session(sample.latest_handshake, sample.wall)) \
            and not is_down(state):
        # Sent with no session to carry it: WireGuard initiates a handshake; none within
        # KNOCK_GRACE_S and the link is dead (rules.judge). Counted from now, when the probe surely left.
        state = replace(state, knock_since=now)
    if r.ok:
        actions: list[Action] = []
        if state.target is Target.SILENT and target and not state.silence_reason:
            actions.append(TargetVerdict(target, Target.ANSWERS, "probes decide again"))
        state, changed = _alive(replace(state, target=Target.ANSWERS, silence_reason=""), now, "probe answered")
        return state, actions + changed
    if state.target is Target.SILENT:
        if state.silence_reason and target:  # confirmed: say it now, once
            reason, state = state.silence_reason, replace(state, silence_reason="")
            return state, [TargetVerdict(target, Target.SILENT, reason)]
        return state, []  # expected: not evidence, and no reason to probe it any faster
    if state.probe_failures > 0 and 0 < r.sent < settings.confirm_pings and state.target is Target.ANSWERS \
            and not is_down(state):
        # A lone echo sent before the first failure was known: lost on a lossy link, it must
        # not stand in for the confirmation already under way. Only a burst convicts.
        return state, []
    failures = state.probe_failures + 1
    if failures == 1:
        state = replace(state, failing_since=_sent_wall(state, r, now, settings))
    state = replace(state, probe_failures=failures)
    if state.target is Target.UNPROVEN:
        if failures >= settings.ping_failafternum and target:
            # Never answered since tracking began: its silence is not evidence. Say so once.
            return replace(state, target=Target.SILENT, probe_failures=0), [
                TargetVerdict(target, Target.SILENT, f"never answered ({failures} probes)")]
        return state, []
    if failures >= settings.ping_failafternum:
        return _down(state, now, f"{failures} probes failed ({r.reason or 'no reply'})", settings)
    # Confirm a first failure at once instead of a whole ping_interval later, with a burst of
    # confirm_pings echoes: a lossy link loses one probe often, all of a burst almost never.
    return state, [_probe(state, target, settings)] if target else []


def _sent_wall(state: LinkState, r: ProbeResult, now: float, settings: LinkSettings) -> float:
    """The epoch second before the failed probe ``r`` was sent (its echoes went 0.2 s apart, and
    the last one waited ping_timeout), less one: wg dumps handshakes to the whole second."""
    if state.last_sample is None:
        return 0.0
    wall_now = state.last_sample.wall + (now - state.sampled_at)
    return wall_now - settings.ping_timeout_s - max(r.sent - 1, 0) * ECHO_SPACING_S - 1.0


def _probe(state: LinkState, target: str, settings: LinkSettings) -> Probe:
    """A probe of an up peer; while its probes are failing, every one is a confirmation (a
    burst of confirm_pings): a single echo lost then must not make the run, whichever clock
    (the cycle, the fast lane, the failure itself) sends it."""
    confirming = state.probe_failures > 0 and not is_down(state)
    return Probe(target, settings.confirm_pings if confirming else 0)


# probe.INTERVAL_S: between the echo requests of one probe (the core imports no I/O module)
ECHO_SPACING_S = 0.2


def step(state: LinkState, obs: Observation, now: float, settings: LinkSettings) -> Result:
    """Advance one peer's machine by one observation. ``now`` is monotonic seconds."""
    if isinstance(obs, Sample):
        return _on_sample(state, obs, now, settings)
    if isinstance(obs, ProbeResult):
        return _on_probe(state, obs, now, settings)
    if isinstance(obs, ResolveResult):
        return on_resolve(state, obs)
    if isinstance(obs, UnderlayResult):
        return _on_underlay(state, obs)
    if isinstance(obs, Tick):
        return _on_tick(state, now, settings)
    if isinstance(obs, Seen):
        return _on_seen(state, obs, now)
    if isinstance(obs, Measured):
        return on_measured(state, obs, now, settings)
    if isinstance(obs, MtuResult):
        return mtu.on_result(state, obs)
    return on_set(state, obs)
