"""The per-peer link state machine: pure, no I/O, time passed in.

``step(state, observation, now, settings)`` returns the next state and the actions the caller
must carry out. ``TRANSITIONS`` lists every state change the machine can make; the docs'
diagram is drawn from it and a property test checks that the machine never makes a change
missing from it.

Only evidence that crossed the tunnel both ways revokes a down verdict: a probe reply or a
completed handshake. rx growth is one-way (a peer whose answers we never get still sends
keepalives and handshake initiations), so it counts only where probes cannot decide, only
while a session exists, and never brings a down link back. tx is never evidence.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from wgtrack.config import TrackSettings
from wgtrack.model import split_endpoint

# A handshake is renewed at least every REKEY_AFTER_TIME (120 s) on a link with traffic and
# a key is dead after REJECT_AFTER_TIME (180 s); keepalive silence and a margin come on top.
HANDSHAKE_MARGIN_S = 10.0
# WireGuard's REJECT_AFTER_TIME: past it no key is usable, so there is no session, and rx
# growth (handshake initiations, at most) says nothing about the link.
SESSION_S = 180.0
# When we sent a probe and no session exists, WireGuard initiates a handshake and retries
# every REKEY_TIMEOUT (5 s). Three tries without a completed handshake: the link is dead.
KNOCK_GRACE_S = 16.0
# A down peer is probed every cycle for its first minute down (recovery shows at once), then
# ever less often: every quarter of its time down, at most every DOWN_PROBE_CAP_S. On a hub
# with thousands of departed road warriors, each probe also makes WireGuard send handshake
# initiations to a dead address; a heal is still seen by the next handshake the peer completes.
DOWN_FAST_S = 60.0
DOWN_PROBE_CAP_S = 60.0


class Target(enum.Enum):
    """What the probe target has shown since tracking began (or since it was configured)."""

    UNPROVEN = "unproven"  # never answered: its silence is not evidence
    ANSWERS = "answers"  # it answered: probes decide
    SILENT = "silent"  # declared silent: the peer is judged by handshakes until it answers


class Status(enum.Enum):
    """What the output ``status`` field says; the values are 0.2.0's names where they apply."""

    UP = "up:ok"
    # Neither evidence of life nor of death: an idle link without keepalive and without
    # probes. 0.2.0 called this "down" 181 s after the last handshake; that was a lie.
    IDLE = "idle"
    DOWN = "down"  # down, and nothing to re-resolve (numeric endpoint or reresolve = no)
    WAITING = "down:waiting"  # down; re-resolution starts after cycles_wait quiet cycles
    CHECKING = "down:checking"  # re-resolving every cycles_checkperiod cycles
    BACKINGOFF = "down:backingoff"  # re-resolving with a doubling interval
    SLOWCHECKING = "down:slowchecking"  # re-resolving every cycles_slowcheckingperiod cycles

    @property
    def is_up(self) -> bool:
        return self is Status.UP

    @property
    def is_down(self) -> bool:
        return self in _DOWN_STATUSES


_DOWN_STATUSES = frozenset((Status.DOWN, Status.WAITING, Status.CHECKING, Status.BACKINGOFF, Status.SLOWCHECKING))
_DOWN_WITH_HOST = (Status.WAITING, Status.CHECKING, Status.BACKINGOFF, Status.SLOWCHECKING)
_ALL_DOWN = (Status.DOWN, *_DOWN_WITH_HOST)

# (from, to, why). ``None`` as from is a newly tracked peer.
TRANSITIONS: tuple[tuple[Status | None, Status, str], ...] = (
    (None, Status.UP, "a handshake younger than the limit, or a probe reply"),
    (Status.IDLE, Status.UP, "completed handshake, probe reply, or rx growth within a session where probes "
                             "cannot decide"),
    *((old, Status.UP, "completed handshake or probe reply (never rx growth: it is one-way)") for old in _ALL_DOWN),
    *((old, Status.IDLE, "no evidence either way (no traffic, keepalive or probes)")
      for old in (None, Status.UP, *_ALL_DOWN)),
    *((old, Status.DOWN, "probes to an answering target failed, handshake stale despite keepalive, or no "
                         "handshake completed after our probes; nothing to re-resolve")
      for old in (None, Status.UP, Status.IDLE, *_DOWN_WITH_HOST)),
    *((old, Status.WAITING, "down with a hostname endpoint, fewer than cycles_wait quiet cycles")
      for old in (None, Status.UP, Status.IDLE, Status.DOWN)),
    *((old, Status.CHECKING, "cycles_wait quiet cycles passed") for old in (None, Status.UP, Status.IDLE,
                                                                             Status.DOWN, Status.WAITING)),
    *((old, Status.BACKINGOFF, "cycles_checking spent; re-resolving with a doubling interval")
      for old in (None, Status.UP, Status.IDLE, Status.DOWN, Status.WAITING, Status.CHECKING)),
    *((old, Status.SLOWCHECKING, "back-off interval reached cycles_slowcheckingperiod")
      for old in (None, Status.UP, Status.IDLE, Status.DOWN, Status.WAITING, Status.CHECKING,
                  Status.BACKINGOFF)),
)


# ---- observations ----

class Sample(NamedTuple):
    """One dump reading of a peer, with what the config says about it.

    ``wall`` is the epoch time of the dump; ``rand`` a number in [0, 1) from the caller's
    random source, for jitter (tests pass fixed values). A tuple: a hub builds one per peer
    per cycle, and a tuple is built in a fraction of a frozen dataclass's time.
    """

    latest_handshake: int
    rx_bytes: int
    keepalive_s: int
    wall: float
    probe_target: str | None  # None when this peer cannot be probed
    endpoint: str | None = None  # the endpoint WireGuard uses now
    hostname: str | None = None  # set when the peer is eligible for re-resolution
    port: int | None = None
    handshake_target: str | None = None  # any address routed into this peer's tunnel
    rand: float = 0.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe through the tunnel."""

    ok: bool
    rtt_ms: float | None = None
    loss: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed between dumps: the fast lane's chance to probe a down peer again."""

    wall: float


@dataclass(frozen=True, slots=True)
class Seen:
    """A read of the peer between cycles, made because the nflog trigger saw a handshake. Only
    its handshake and endpoint are news: counting cycles (probes, re-resolution) stays with the
    cycle's Sample."""

    latest_handshake: int
    endpoint: str | None
    wall: float


@dataclass(frozen=True, slots=True)
class UnderlayResult:
    """Outcome of one ICMP echo to the endpoint's own address, outside the tunnel."""

    ok: bool
    address: str = ""


@dataclass(frozen=True, slots=True)
class ResolveResult:
    """Outcome of re-resolving the peer's hostname: addresses, or why there are none."""

    addresses: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SetEndpointResult:
    """Outcome of ``wg set ... endpoint``."""

    endpoint: str
    ok: bool
    error: str | None = None


Observation = Sample | ProbeResult | ResolveResult | SetEndpointResult | UnderlayResult | Tick | Seen


# ---- actions ----

@dataclass(frozen=True, slots=True)
class Probe:
    """Send a probe through the tunnel to ``target`` and report a ``ProbeResult``."""

    target: str


@dataclass(frozen=True, slots=True)
class TriggerHandshake:
    """Send any packet into the tunnel (no probe target): WireGuard then starts a handshake."""

    target: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve ``hostname`` and report a ``ResolveResult`` (never blocking the caller's loop)."""

    hostname: str


@dataclass(frozen=True, slots=True)
class SetEndpoint:
    """Point the peer at ``endpoint`` (numeric) and report a ``SetEndpointResult``."""

    endpoint: str
    old: str | None


@dataclass(frozen=True, slots=True)
class Changed:
    """The status changed; ``event`` says whether operators hear of it."""

    old: Status | None
    new: Status
    reason: str
    connected: bool = False  # idle -> up by a completed handshake: the peer connected

    @property
    def event(self) -> str | None:
        """``peer_down`` on entering a down state, ``peer_up`` on leaving one for up, or on an
        idle peer connecting (a road warrior's first handshake); moves between down states
        (the re-resolution schedule) and other moves to or from idle are no events."""
        was_down = self.old is not None and self.old.is_down
        if self.new.is_down and not was_down:
            return "peer_down"
        if self.new.is_up and (was_down or self.connected):
            return "peer_up"
        return None


@dataclass(frozen=True, slots=True)
class EndpointChanged:
    """Event: wgtrack moved the peer to a new endpoint."""

    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class Roamed:
    """Event: the peer's endpoint changed and wgtrack did not change it (the peer moved and
    WireGuard followed its packets: a phone changing networks, a new NAT mapping)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ProbeUnderlay:
    """Ping the endpoint's address outside the tunnel and report an ``UnderlayResult``."""

    address: str


@dataclass(frozen=True, slots=True)
class Diagnosed:
    """Event: why a down link is likely down. ``tunnel_only``: the host answers, its tunnel does
    not (keys, a firewall on the UDP port, a stale endpoint); ``host_unreachable``: the host
    does not answer either (it is off, or the path to it is broken)."""

    cause: str
    address: str


@dataclass(frozen=True, slots=True)
class ResolveFailed:
    """Event: re-resolution or applying its result failed."""

    reason: str


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    """Log once: the probe target was declared silent, or answers again."""

    target: str
    verdict: Target
    reason: str


Effect = Probe | TriggerHandshake | Resolve | SetEndpoint | ProbeUnderlay  # what the caller must carry out
EFFECTS: tuple[type[Probe], type[TriggerHandshake], type[Resolve], type[SetEndpoint], type[ProbeUnderlay]] = (
    Probe, TriggerHandshake, Resolve, SetEndpoint, ProbeUnderlay)
Action = Effect | Changed | EndpointChanged | Roamed | Diagnosed | ResolveFailed | TargetVerdict
UNDERLAY_PERIOD_S = 60.0  # at most one underlay probe a minute per down peer


class LinkState(NamedTuple):
    """Everything the machine remembers about one peer. A tuple, for ``replace``: it runs for
    every peer every cycle, and ``_replace`` is three times faster than a dataclass's copy.

    Nothing in it changes by time alone for a peer that is neither probed nor re-resolved:
    that is what lets the tracker skip such a peer when its dump line has not changed
    (``unchanged``)."""

    status: Status | None = None  # None until the first sample
    since: float = 0.0
    latest_handshake: int = 0
    rx_bytes: int = -1  # -1: no previous reading, so no growth can be claimed yet
    first_seen: float | None = None
    probe_failures: int = 0
    cycles_to_probe: int = 0
    rtt_ms: float | None = None
    loss: float | None = None
    endpoint: str | None = None
    quiet_cycles: int = 0  # samples since the last evidence of life (counted where re-resolution may follow)
    resolves: int = 0  # re-resolutions issued in this down episode
    last_resolve_at: int = -1  # quiet_cycles when the last one was issued
    next_resolve_at: int = -1  # in back-off: quiet_cycles of the next one
    backoff_cycles: int = 0  # current back-off interval (0 = not backing off)
    resolving: bool = False
    last_sample: Sample | None = None
    target: Target = Target.UNPROVEN
    failing_since: float = 0.0  # epoch time of the sample before the first failed probe of a run
    # monotonic time our first failed probe with no session to carry it came back (a knock: the
    # probe made WireGuard initiate a handshake). Not when the probe was asked for: on a big hub
    # a probe may wait its turn for minutes (probe_rate), and a knock not yet sent proves nothing.
    knock_since: float | None = None
    silence_reason: str = ""  # set while a silent verdict is not yet announced (see _on_probe)
    down_since: float = 0.0  # monotonic time the peer entered a down state
    last_probe_at: float = -1e18  # monotonic time of the last probe sent
    setting_endpoint: str | None = None  # an endpoint wgtrack is applying: seeing it is no roam
    setting_from: str | None = None  # the endpoint it replaces (a dump may show the new one first)
    diagnosis: str | None = None  # while down, with underlay_probe: tunnel_only / host_unreachable
    underlay_probe_at: float = -1e18  # monotonic time of the last underlay probe
    was_up: bool = False  # up at some time since tracking began (a departed peer never was)

    @property
    def probe_silent(self) -> bool:
        return self.target is Target.SILENT


def replace(state: LinkState, **changes: Any) -> LinkState:
    """A copy of ``state`` with ``changes``; the very same object when they change nothing, so
    that an unchanged peer's state stays one object from cycle to cycle."""
    new = state._replace(**changes)
    return state if new == state else new


def cycles_to_next_resolve(state: LinkState, s: TrackSettings) -> int | None:
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


def stale_limit(settings: TrackSettings, keepalive_s: int) -> float:
    """Handshake age beyond which a link that should be refreshing its key is not."""
    return settings.handshake_timeout_s + keepalive_s + HANDSHAKE_MARGIN_S


class UndeclaredTransition(AssertionError):
    """The machine tried a move that ``TRANSITIONS`` does not declare: a bug, never input."""


_DECLARED = frozenset((old, new) for old, new, _ in TRANSITIONS)


def _move(state: LinkState, new: Status, now: float, reason: str,
          connected: bool = False) -> tuple[LinkState, list[Action]]:
    if state.status is new:
        return state, []
    if (state.status, new) not in _DECLARED:  # the table is the spec, enforced (as h11 does)
        raise UndeclaredTransition(f"{state.status} -> {new} ({reason}) is not in TRANSITIONS")
    if new.is_down and not (state.status is not None and state.status.is_down):
        state = replace(state, down_since=now)
    if new.is_up and not state.was_up:
        state = replace(state, was_up=True)
    return replace(state, status=new, since=now), [Changed(state.status, new, reason, connected)]


def _alive(state: LinkState, now: float, reason: str, handshake: bool = False) -> tuple[LinkState, list[Action]]:
    """Evidence of life: up, and the whole re-resolution schedule starts over. A completed
    handshake of an idle peer is a connection, which operators hear of."""
    # An unproven target's failures still count towards declaring it silent.
    failures = state.probe_failures if state.target is Target.UNPROVEN else 0
    state = replace(state, probe_failures=failures, quiet_cycles=0, resolves=0, last_resolve_at=-1,
                    next_resolve_at=-1, backoff_cycles=0, knock_since=None)
    return _move(state, Status.UP, now, reason, connected=handshake and state.status is Status.IDLE)


def _down(state: LinkState, now: float, reason: str, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    """Dead: plain ``down``, or the re-resolution schedule for a hostname peer. A pending knock
    has done its work: kept, it would hold a dead peer among those the clock moves
    (``timeless``), and a hub's thousands of departed peers would be looked at every cycle."""
    if state.knock_since is not None:
        state = replace(state, knock_since=None)
    sample = state.last_sample
    if sample is None or sample.hostname is None:
        return _move(state, Status.DOWN, now, reason)
    return _schedule(state, now, reason, settings, sample)


def _schedule(state: LinkState, now: float, reason: str, s: TrackSettings,
              sample: Sample) -> tuple[LinkState, list[Action]]:
    """0.2.0's schedule, counted from the last evidence of life (the probes already waited).

    waiting for ``cycles_wait``; then checking for ``cycles_checking``, re-resolving every
    ``cycles_checkperiod``; then back-off from 2 × checkperiod, doubling up to
    ``cycles_slowcheckingperiod``; then every slowcheckingperiod. Each back-off gap is
    shortened by up to a quarter at random, so it never exceeds the cap.
    """
    q = state.quiet_cycles
    wait, checking, period, cap = s.cycles_wait, s.cycles_checking, s.cycles_checkperiod, s.cycles_slowcheckingperiod
    due = False
    if q < wait:
        status = Status.WAITING
    elif q < wait + checking:
        status = Status.CHECKING
        due = state.resolves == 0 or (q - wait) % period == 0
    else:
        if state.backoff_cycles == 0:
            state = replace(state, backoff_cycles=min(2 * period, cap), next_resolve_at=q if state.resolves == 0
                            else max(state.last_resolve_at, 0) + min(2 * period, cap))
        due = q >= state.next_resolve_at
        status = Status.SLOWCHECKING if state.backoff_cycles >= cap else Status.BACKINGOFF
    state, actions = _move(state, status, now, reason)
    if due and not state.resolving and q != state.last_resolve_at:
        state = replace(state, resolves=state.resolves + 1, last_resolve_at=q, resolving=True)
        actions.append(Resolve(sample.hostname or ""))
        if status in (Status.BACKINGOFF, Status.SLOWCHECKING):
            backoff = min(2 * state.backoff_cycles, cap) if state.resolves > 1 else state.backoff_cycles
            gap = backoff - int(sample.rand * (backoff // 4 + 1))
            state = replace(state, next_resolve_at=q + max(1, gap), backoff_cycles=backoff)
    return state, actions


def _session(latest_handshake: int, wall: float) -> bool:
    """Whether a session exists at ``wall``: a handshake younger than SESSION_S (keys usable)."""
    return bool(latest_handshake) and wall - latest_handshake < SESSION_S


def _probes_decide(state: LinkState, settings: TrackSettings, target: str | None) -> bool:
    """Probes are evidence both ways only to a target that has answered (and not gone silent)."""
    return settings.ping_interval > 0 and target is not None and state.target is Target.ANSWERS


def _probing(s: Sample, settings: TrackSettings) -> bool:
    # WireGuard cannot send to a peer without an endpoint: a probe would only be dropped.
    return settings.ping_interval > 0 and s.probe_target is not None and s.endpoint is not None


def _judge(state: LinkState, s: Sample, wall: float, now: float, settings: TrackSettings, fresh: bool,
           rx_grew: bool, decide: bool, probing: bool, explain: bool = True) -> tuple[str, str]:
    """The rules in order (docs/link-state.md), after the probe bookkeeping: what a sample taken
    at ``wall`` says, as (verdict, reason); verdict is alive, up, down, idle or keep (the probe
    sent this cycle decides). Shared by ``_on_sample`` and ``unchanged`` (which needs no
    reason: ``explain`` off), so the fast path cannot drift from the rules."""
    hs = s.latest_handshake
    age = max(0.0, wall - hs) if hs else None
    limit = settings.handshake_timeout_s + s.keepalive_s + HANDSHAKE_MARGIN_S  # stale_limit, inlined: hot
    status = state.status
    is_down = status is not None and status.is_down
    if fresh:
        return "alive", "new handshake"
    if decide and state.probe_failures >= settings.ping_failafternum:
        return "down", f"{state.probe_failures} probes failed" if explain else ""
    knock = state.knock_since
    if not decide and knock is not None and now - knock >= KNOCK_GRACE_S:
        return "down", f"no handshake completed {now - knock:.0f} s after our probe" if explain else ""
    if rx_grew and age is not None and age < SESSION_S and not decide and not is_down:
        return "alive", "rx grew"
    if age is not None and age <= limit and not is_down:
        # A young handshake keeps a link up, but only a new one brings a down link back: a
        # blackholed link keeps its last handshake for up to three minutes.
        return "up", f"handshake {age:.0f} s old" if explain else ""
    if s.keepalive_s and (age is not None or now - (state.first_seen or now) > limit):
        # With keepalive a live link renews its handshake; an old or absent one is a dead link.
        if not explain:
            return "down", ""
        what = f"handshake {age:.0f} s old" if age is not None else "no handshake"
        return "down", f"{what} despite keepalive {s.keepalive_s} s"
    if probing:
        if status is None:
            return "idle", "awaiting first probe"
        return ("down", "still no reply") if is_down else ("keep", "")
    return "idle", "no traffic and no probes: no evidence either way"


def _same_reading(a: Sample, b: Sample) -> bool:
    """Equal but for the time and the jitter draw."""
    return a[:3] == b[:3] and a[4:9] == b[4:9]


def _on_sample(state: LinkState, s: Sample, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    fresh_handshake = s.latest_handshake > state.latest_handshake and state.first_seen is not None
    rx_grew = 0 <= state.rx_bytes < s.rx_bytes
    session = _session(s.latest_handshake, s.wall)
    probing = _probing(s, settings)
    # A down peer's probes are the fast lane's (``_on_tick``): the cycle leaves them alone.
    in_lane = _in_lane(state, settings)
    previous = state.last_sample
    actions: list[Action] = []
    if state.endpoint is not None and s.endpoint is not None and s.endpoint != state.endpoint \
            and s.endpoint != state.setting_endpoint:
        actions.append(Roamed(state.endpoint, s.endpoint))
    if previous is not None and previous.probe_target != s.probe_target:
        # A new target has shown nothing yet; neither has the old one's silence any meaning.
        state = replace(state, target=Target.UNPROVEN, probe_failures=0)
    # Time alone is no news for a peer that is neither probed nor re-resolved: it keeps its
    # last sample (whose time nothing reads) and counts no quiet cycles (only the re-resolution
    # schedule does), so that an unchanged reading leaves its state as it was.
    timeless = previous is not None and (not probing or in_lane) and s.hostname is None \
        and _same_reading(previous, s)
    state = replace(
        state,
        latest_handshake=s.latest_handshake,
        rx_bytes=s.rx_bytes,
        first_seen=now if state.first_seen is None else state.first_seen,
        endpoint=s.endpoint,
        quiet_cycles=state.quiet_cycles + 1 if s.hostname is not None else state.quiet_cycles,
        last_sample=previous if timeless else s,
        knock_since=None if session else state.knock_since,
    )
    if probing and not in_lane:
        # Probe every ping_interval cycles while up; while down (with the fast lane off) every
        # cycle at first, so that recovery is seen at once (each probe also makes WireGuard
        # retry its handshake), then backing off (DOWN_FAST_S).
        if state.status is not None and state.status.is_down:
            down_for = now - state.down_since
            due = (state.was_up and down_for <= DOWN_FAST_S) \
                or now - state.last_probe_at >= min(DOWN_PROBE_CAP_S, down_for / 4)
        elif settings.probe_interval_s > 0:  # on its own clock: the fast lane also probes
            due = now - state.last_probe_at >= settings.probe_interval_s or state.probe_failures > 0
        else:
            due = state.cycles_to_probe <= 0 or state.probe_failures > 0
        if due:
            actions.append(Probe(s.probe_target or ""))
            state = replace(state, cycles_to_probe=settings.ping_interval - 1, last_probe_at=now)
        else:
            state = replace(state, cycles_to_probe=state.cycles_to_probe - 1)
    decide = _probes_decide(state, settings, s.probe_target)
    if fresh_handshake and decide and state.probe_failures >= settings.ping_failafternum:
        if s.latest_handshake > state.failing_since:
            # Completed after our probes went unanswered: the link works, the target does not
            # answer. Announced only if the next probe fails too: at the end of an outage the
            # handshake often lands just before the first reply, and that is no silent target.
            reason = f"{state.probe_failures} probes unanswered while a handshake completed"
            state = replace(state, target=Target.SILENT, probe_failures=0, silence_reason=reason)
            decide = False
        else:
            fresh_handshake = False  # it completed before the failures: no news of the link now
    verdict, why = _judge(state, s, s.wall, now, settings, fresh_handshake, rx_grew, decide, probing)
    changed: list[Action] = []
    if verdict == "alive":
        state, changed = _alive(state, now, why, handshake=fresh_handshake)
    elif verdict == "up":
        state, changed = _move(state, Status.UP, now, why)
    elif verdict == "down":
        state, changed = _down(state, now, why, settings)
    elif verdict == "idle":
        state, changed = _move(state, Status.IDLE, now, why)
    state, underlay = _underlay_due(state, s, now, settings)
    return state, actions + changed + underlay


_VERDICT_STATUS = {"up": Status.UP, "down": Status.DOWN, "idle": Status.IDLE}


def unchanged(state: LinkState, wall: float, now: float, settings: TrackSettings) -> bool:
    """The fast path: True when a sample equal to the last one but for its time (the peer's dump
    line did not change) would leave the state as it is and ask for nothing. The tracker then
    skips the peer without building a sample; a property test holds this equal to ``step``."""
    s = state.last_sample
    status = state.status
    if s is None or status is None or s.hostname is not None or state.endpoint != s.endpoint \
            or state.latest_handshake != s.latest_handshake or state.rx_bytes != s.rx_bytes:
        return False
    probing = _probing(s, settings)
    if probing and not _in_lane(state, settings):
        return False  # the cycle probes it: probes count cycles
    # A pending knock is cleared by a session (a handshake younger than SESSION_S).
    if state.knock_since is not None and _session(s.latest_handshake, wall):
        return False
    verdict, _ = _judge(state, s, wall, now, settings, False, False, _probes_decide(state, settings, s.probe_target),
                        probing, False)
    if _VERDICT_STATUS.get(verdict) is not status:
        return False
    if status.is_down:
        return not (settings.underlay_probe and s.endpoint and now - state.underlay_probe_at >= UNDERLAY_PERIOD_S)
    return state.diagnosis is None and state.underlay_probe_at == -1e18


def timeless(state: LinkState, wall: float, now: float, settings: TrackSettings) -> bool:
    """``unchanged`` now and at any later time: nothing in the rules depends on the clock for
    this peer any more (no keepalive, no handshake or one past the stale limit, which only
    grows older, no knock waiting for its handshake, no underlay probe to come). The tracker
    then leaves it alone until its line, its settings or its state change; property tests hold
    it (here, and a tracker fed dump changes against one fed whole dumps)."""
    s = state.last_sample
    if s is None or s.keepalive_s or state.knock_since is not None or not unchanged(state, wall, now, settings):
        return False  # a pending knock goes down once KNOCK_GRACE_S have passed
    hs = s.latest_handshake
    if hs and wall - hs <= stale_limit(settings, 0):
        return False
    return not (state.status is not None and state.status.is_down and settings.underlay_probe and s.endpoint)


def _underlay_due(state: LinkState, s: Sample, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    """While down, with ``underlay_probe``: ping the endpoint's own address at most once per
    UNDERLAY_PERIOD_S (it goes outside the tunnel, to the peer's public address); up again, the
    diagnosis is dropped."""
    if state.status is None or not state.status.is_down:
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


def _on_tick(state: LinkState, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    """The fast lane: a down peer is probed every ``down_probe_interval`` seconds for its first
    minute down (DOWN_FAST_S), then less often (a quarter of the time down, at most every
    DOWN_PROBE_CAP_S), whatever the cycle: a heal is seen within a second or so at any
    cycle_time. Only where a probe is possible (a target, an endpoint, probes on)."""
    s = state.last_sample
    if state.status is None or s is None or not s.probe_target or s.endpoint is None or settings.ping_interval == 0:
        return state, []
    if not state.status.is_down:
        # probe_interval: up (and idle) peers on their own clock too, so a break is seen in seconds
        if settings.probe_interval_s > 0 and now - state.last_probe_at >= settings.probe_interval_s:
            return replace(state, last_probe_at=now), [Probe(s.probe_target)]
        return state, []
    if settings.down_probe_interval_s <= 0:
        return state, []
    if now - state.last_probe_at < _down_gap(now - state.down_since, settings.down_probe_interval_s, state.was_up):
        return state, []
    return replace(state, last_probe_at=now), [Probe(s.probe_target)]


def _on_seen(state: LinkState, s: Seen, now: float) -> tuple[LinkState, list[Action]]:
    """A handshake between cycles: up at once. A roam is news too. Where probes to an
    answering target are failing, what the handshake means (a silent target?) is for the
    cycle's Sample to decide, so it is left unread."""
    if state.status is None:
        return state, []  # not yet introduced by a cycle
    actions: list[Action] = []
    if state.endpoint is not None and s.endpoint is not None and s.endpoint != state.endpoint \
            and s.endpoint != state.setting_endpoint:
        actions.append(Roamed(state.endpoint, s.endpoint))
    if s.endpoint is not None:
        state = replace(state, endpoint=s.endpoint)
    if s.latest_handshake <= state.latest_handshake or (state.probe_failures > 0 and state.target is Target.ANSWERS):
        return state, actions
    state = replace(state, latest_handshake=s.latest_handshake)
    state, changed = _alive(state, now, "new handshake", handshake=True)
    return state, actions + changed


def tick_due(state: LinkState, settings: TrackSettings) -> float:
    """The monotonic time from which a ``Tick`` asks for a probe (``inf``: time alone never
    will). The daemon's fast lane keeps peers in a heap by it instead of looking at every down
    peer four times a second; a test holds it to ``_on_tick``."""
    s = state.last_sample
    if state.status is None or s is None or not s.probe_target or s.endpoint is None or settings.ping_interval == 0:
        return math.inf
    # Never probed (last_probe_at is -1e18): due at once, that is when its status began.
    last = max(state.last_probe_at, state.since - 1e9)
    if not state.status.is_down:
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


def _in_lane(state: LinkState, settings: TrackSettings) -> bool:
    """Down with the fast lane on: its probes come from ``_on_tick`` alone."""
    return state.status is not None and state.status.is_down and settings.down_probe_interval_s > 0


def urgent(state: LinkState, now: float) -> bool:
    """Whether this link's probes go first when probes wait: it is up, or it went down from up
    within DOWN_FAST_S (its fast minute). Never-up, long-down, new and idle links wait: each of
    their probes makes WireGuard retry a handshake with an address that may be dead."""
    status = state.status
    if status is Status.UP:
        return True
    return status is not None and status.is_down and state.was_up and now - state.down_since <= DOWN_FAST_S


def _down_gap(down_for: float, interval: float, was_up: bool) -> float:
    """Seconds between probes of a down peer: ``interval`` for its first minute (if it was ever
    up: a hub's departed peers, down since wgtrack started, get no such minute), then a
    quarter of the time down, at most DOWN_PROBE_CAP_S (``tick_due`` solves the same rule)."""
    if was_up and down_for <= DOWN_FAST_S:
        return interval
    return max(interval, min(DOWN_PROBE_CAP_S, down_for / 4))


def _on_underlay(state: LinkState, r: UnderlayResult) -> tuple[LinkState, list[Action]]:
    if state.status is None or not state.status.is_down:
        return state, []  # up again meanwhile: nothing to explain
    cause = "tunnel_only" if r.ok else "host_unreachable"
    if cause == state.diagnosis:
        return state, []
    return replace(state, diagnosis=cause), [Diagnosed(cause, r.address)]


def _on_probe(state: LinkState, r: ProbeResult, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    state = replace(state, rtt_ms=r.rtt_ms, loss=r.loss)
    sample = state.last_sample
    target = sample.probe_target if sample else None
    if not r.ok and state.knock_since is None and not (sample and _session(sample.latest_handshake, sample.wall)) \
            and not (state.status is not None and state.status.is_down):
        # Sent with no session to carry it: WireGuard initiates a handshake; none within
        # KNOCK_GRACE_S and the link is dead (_judge). Counted from now, when the probe surely left.
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
    failures = state.probe_failures + 1
    if failures == 1:
        state = replace(state, failing_since=state.last_sample.wall if state.last_sample else 0.0)
    state = replace(state, probe_failures=failures)
    if state.target is Target.UNPROVEN:
        if failures >= settings.ping_failafternum and target:
            # Never answered since tracking began: its silence is not evidence. Say so once.
            return replace(state, target=Target.SILENT, probe_failures=0), [
                TargetVerdict(target, Target.SILENT, f"never answered ({failures} probes)")]
        return state, []
    if failures >= settings.ping_failafternum:
        return _down(state, now, f"{failures} probes failed ({r.reason or 'no reply'})", settings)
    # Confirm a first failure at once instead of a whole ping_interval later.
    return state, [Probe(target)] if target else []


def _family(address: str) -> int:
    return ipaddress.ip_address(address.split("%", 1)[0]).version


def _format_endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if _family(address) == 6 else f"{address}:{port}"


def choose_address(addresses: tuple[str, ...], current: str | None) -> str | None:
    """Pick the address to apply: the current endpoint's family first; rotate past the
    current address when there are several, so repeated failures try every record."""
    current_host: str | None = None
    if current:
        try:
            current_host = split_endpoint(current)[0]
        except ValueError:
            current_host = None
    family = _family(current_host) if current_host else 4
    ordered = [a for a in addresses if _family(a) == family] + [a for a in addresses if _family(a) != family]
    if not ordered:
        return None
    if current_host in ordered:
        return ordered[(ordered.index(current_host) + 1) % len(ordered)]
    return ordered[0]


def _on_resolve(state: LinkState, r: ResolveResult, now: float) -> tuple[LinkState, list[Action]]:
    state = replace(state, resolving=False)
    sample = state.last_sample
    if sample is None or sample.hostname is None or sample.port is None or not state.status or not state.status.is_down:
        return state, []  # the link came back meanwhile, or is no longer eligible
    if r.error is not None or not r.addresses:
        return state, [ResolveFailed(f"{sample.hostname}: {r.error or 'no addresses'}")]
    address = choose_address(r.addresses, state.endpoint)
    if address is None:
        return state, [ResolveFailed(f"{sample.hostname}: no usable address")]
    endpoint = _format_endpoint(address, sample.port)
    if endpoint == state.endpoint:
        return state, []  # same address: nothing to apply
    return (replace(state, setting_endpoint=endpoint, setting_from=state.endpoint),
            [SetEndpoint(endpoint, state.endpoint)])


def _on_set(state: LinkState, r: SetEndpointResult) -> tuple[LinkState, list[Action]]:
    if not r.ok:
        return replace(state, setting_endpoint=None), [ResolveFailed(f"setting endpoint {r.endpoint} failed: "
                                                                     f"{r.error}")]
    old = state.setting_from if state.setting_endpoint == r.endpoint else state.endpoint
    state = replace(state, endpoint=r.endpoint, setting_endpoint=None, setting_from=None)
    actions: list[Action] = [EndpointChanged(old, r.endpoint)]
    sample = state.last_sample
    # Setting an endpoint sends nothing; a packet into the tunnel starts the handshake now.
    if sample and sample.probe_target:
        actions.append(Probe(sample.probe_target))
    elif sample and sample.handshake_target:
        actions.append(TriggerHandshake(sample.handshake_target))
    return state, actions


def step(state: LinkState, obs: Observation, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    """Advance one peer's machine by one observation. ``now`` is monotonic seconds."""
    if isinstance(obs, Sample):
        return _on_sample(state, obs, now, settings)
    if isinstance(obs, ProbeResult):
        return _on_probe(state, obs, now, settings)
    if isinstance(obs, ResolveResult):
        return _on_resolve(state, obs, now)
    if isinstance(obs, UnderlayResult):
        return _on_underlay(state, obs)
    if isinstance(obs, Tick):
        return _on_tick(state, now, settings)
    if isinstance(obs, Seen):
        return _on_seen(state, obs, now)
    return _on_set(state, obs)
