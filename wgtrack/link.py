"""The per-peer link state machine: pure, no I/O, time passed in.

``step(state, observation, now)`` returns the next state and the actions the caller must
carry out. Evidence of life is a new handshake, rx growth or a probe reply; tx is never
evidence (it grows with our own retries to a dead peer).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from wgtrack.config import TrackSettings

# A handshake is renewed at least every REKEY_AFTER_TIME (120 s) on a link with traffic and
# a key is dead after REJECT_AFTER_TIME (180 s); keepalive silence and a margin come on top.
HANDSHAKE_MARGIN_S = 10.0


class Status(enum.Enum):
    """What the output ``status`` field says; the values are 0.2.0's names where they apply."""

    UP = "up:ok"
    DOWN = "down"
    # Neither evidence of life nor of death: an idle link without keepalive and without
    # probes. 0.2.0 called this "down" 181 s after the last handshake; that was a lie.
    IDLE = "idle"

    @property
    def is_up(self) -> bool:
        return self is Status.UP


@dataclass(frozen=True, slots=True)
class Sample:
    """One dump reading of a peer. ``wall`` is the epoch time the dump was taken."""

    latest_handshake: int
    rx_bytes: int
    keepalive_s: int
    wall: float
    probe_target: str | None  # None when this peer cannot be probed


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe through the tunnel."""

    ok: bool
    rtt_ms: float | None = None
    loss: float = 0.0
    reason: str = ""


Observation = Sample | ProbeResult


@dataclass(frozen=True, slots=True)
class Probe:
    """Action: send a probe through the tunnel to ``target``."""

    target: str


@dataclass(frozen=True, slots=True)
class Changed:
    """Action: report a state change (the caller logs it and tells the outputs)."""

    old: Status | None
    new: Status
    reason: str


Action = Probe | Changed


@dataclass(frozen=True, slots=True)
class LinkState:
    """Everything the machine remembers about one peer."""

    status: Status | None = None  # None until the first sample
    since: float = 0.0
    latest_handshake: int = 0
    rx_bytes: int = -1  # -1: no previous reading, so no growth can be claimed yet
    first_seen: float | None = None
    probe_failures: int = 0
    cycles_to_probe: int = 0
    rtt_ms: float | None = None
    loss: float | None = None
    handshake_age_s: float | None = None
    stale_limit_s: float = 0.0


def stale_limit(settings: TrackSettings, keepalive_s: int) -> float:
    """Handshake age beyond which a link that should be refreshing its key is not."""
    return settings.handshake_timeout_s + keepalive_s + HANDSHAKE_MARGIN_S


def _move(state: LinkState, new: Status, now: float, reason: str) -> tuple[LinkState, list[Action]]:
    if state.status is new:
        return state, []
    return replace(state, status=new, since=now), [Changed(state.status, new, reason)]


def _on_sample(state: LinkState, s: Sample, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    fresh_handshake = s.latest_handshake > state.latest_handshake and state.first_seen is not None
    rx_grew = 0 <= state.rx_bytes < s.rx_bytes
    age = max(0.0, s.wall - s.latest_handshake) if s.latest_handshake else None
    limit = stale_limit(settings, s.keepalive_s)
    probing = settings.ping_interval > 0 and s.probe_target is not None
    state = replace(
        state,
        latest_handshake=s.latest_handshake,
        rx_bytes=s.rx_bytes,
        first_seen=now if state.first_seen is None else state.first_seen,
        handshake_age_s=age,
        stale_limit_s=limit,
    )
    actions: list[Action] = []
    if probing:
        # Probe every ping_interval cycles while up; every cycle while a failure is being
        # confirmed or the link is down, so recovery is seen at once.
        if state.cycles_to_probe <= 0 or state.probe_failures or state.status is not Status.UP:
            actions.append(Probe(s.probe_target or ""))
            state = replace(state, cycles_to_probe=settings.ping_interval - 1)
        else:
            state = replace(state, cycles_to_probe=state.cycles_to_probe - 1)

    if fresh_handshake or rx_grew:
        state = replace(state, probe_failures=0)
        state, changed = _move(state, Status.UP, now, "new handshake" if fresh_handshake else "rx grew")
    elif probing and state.probe_failures >= settings.ping_failafternum:
        state, changed = state, []  # probes own the verdict; they already said down
    elif age is not None and age <= limit:
        if state.status is Status.DOWN and probing:
            changed = []  # a still-young handshake does not outvote failed probes
        else:
            state, changed = _move(state, Status.UP, now, f"handshake {age:.0f} s old")
    elif s.keepalive_s and (age is not None or now - (state.first_seen or now) > limit):
        # With keepalive a live link renews its handshake; an old or absent one is a dead link.
        what = f"handshake {age:.0f} s old" if age is not None else "no handshake"
        state, changed = _move(state, Status.DOWN, now, f"{what} despite keepalive {s.keepalive_s} s")
    elif probing:
        changed = []  # the probe sent this cycle decides
        if state.status is None:
            state, changed = _move(state, Status.IDLE, now, "awaiting first probe")
    else:
        state, changed = _move(state, Status.IDLE, now, "no traffic and no probes: no evidence either way")
    return state, actions + changed


def _on_probe(state: LinkState, r: ProbeResult, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    state = replace(state, rtt_ms=r.rtt_ms, loss=r.loss)
    if r.ok:
        state = replace(state, probe_failures=0)
        return _move(state, Status.UP, now, "probe answered")
    failures = state.probe_failures + 1
    state = replace(state, probe_failures=failures)
    if failures >= settings.ping_failafternum:
        return _move(state, Status.DOWN, now, f"{failures} probes failed ({r.reason or 'no reply'})")
    return state, []


def step(state: LinkState, obs: Observation, now: float, settings: TrackSettings) -> tuple[LinkState, list[Action]]:
    """Advance one peer's machine by one observation. ``now`` is monotonic seconds."""
    if isinstance(obs, Sample):
        return _on_sample(state, obs, now, settings)
    return _on_probe(state, obs, now, settings)
