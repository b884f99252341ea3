"""Re-resolution in the pure machine: the schedule, address choice, and properties over
random observation sequences (Hypothesis stateful)."""

from __future__ import annotations

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from wgtrack import link
from wgtrack.config import TrackSettings
from wgtrack.docgen import schedule_trace
from wgtrack.link import (
    Changed,
    EndpointChanged,
    LinkState,
    Probe,
    ProbeResult,
    Resolve,
    ResolveFailed,
    ResolveResult,
    Sample,
    SetEndpoint,
    SetEndpointResult,
    Status,
    TriggerHandshake,
    choose_address,
    step,
)

S = TrackSettings(ping_interval=1, ping_failafternum=2)
HOSTED = dict(probe_target="192.0.2.2", endpoint="198.51.100.9:51820", hostname="peer.example.test", port=51820)


def resolves(trace: list[tuple[int, str, bool]]) -> list[int]:
    return [cycle for cycle, _, resolved in trace if resolved]


def test_default_schedule_matches_020_gaps() -> None:
    trace = schedule_trace(TrackSettings(), 80)
    # wait 2, check 4 cycles every 2, back off 4, 8, 16, then every 20.
    assert resolves(trace) == [2, 4, 8, 16, 32, 52, 72]
    assert [s for c, s, _ in trace if c in (1, 2, 6, 32)] == ["down:waiting", "down:checking", "down:backingoff",
                                                              "down:slowchecking"]


@pytest.mark.parametrize("wait,checking,period,cap,expected", [
    (0, 0, 1, 4, [1, 3, 7, 11, 15]),  # no waiting, no checking: back-off from 2 at once
    (1, 3, 1, 4, [1, 2, 3, 5, 9, 13]),
    (3, 2, 2, 2, [3, 5, 7, 9]),  # cap equal to the period: straight to slow checking
])
def test_schedule_variants(wait: int, checking: int, period: int, cap: int, expected: list[int]) -> None:
    settings = TrackSettings(cycles_wait=wait, cycles_checking=checking, cycles_checkperiod=period,
                             cycles_slowcheckingperiod=cap)
    assert resolves(schedule_trace(settings, expected[-1]))[:len(expected)] == expected


def test_numeric_endpoint_is_plain_down_and_never_resolved() -> None:
    state, _ = step(LinkState(), Sample(0, 0, 0, 0.0, "192.0.2.2", "198.51.100.9:51820"), 0.0, S)
    state, _ = step(state, ProbeResult(ok=True), 0.0, S)  # the target answers: probes decide
    actions: list[link.Action] = []
    for i in range(1, 10):
        state, new = step(state, Sample(0, 0, 0, float(i), "192.0.2.2", "198.51.100.9:51820"), float(i), S)
        actions += new
        state, new = step(state, ProbeResult(ok=False), float(i), S)
        actions += new
    assert state.status is Status.DOWN
    assert not any(isinstance(a, Resolve) for a in actions)


def down_with_host(quiet: int = 3) -> LinkState:
    state, _ = step(LinkState(), Sample(0, 0, 0, 0.0, **HOSTED), 0.0, S)  # type: ignore[arg-type]
    state, _ = step(state, ProbeResult(ok=True), 0.0, S)  # the target answers: probes decide
    for i in range(quiet):
        state, _ = step(state, Sample(0, 0, 0, float(i), **HOSTED), float(i), S)  # type: ignore[arg-type]
        state, _ = step(state, ProbeResult(ok=False), float(i), S)
    return state


def test_resolve_result_sets_a_new_endpoint_then_triggers_a_handshake() -> None:
    state = replace_resolving(down_with_host())
    state, actions = step(state, ResolveResult(("198.51.100.20",)), 5.0, S)
    assert actions == [SetEndpoint("198.51.100.20:51820", "198.51.100.9:51820")]
    state, actions = step(state, SetEndpointResult("198.51.100.20:51820", ok=True), 5.0, S)
    assert actions == [EndpointChanged("198.51.100.9:51820", "198.51.100.20:51820"), Probe("192.0.2.2")]
    state, actions = step(state, ProbeResult(ok=True, rtt_ms=1.0), 5.0, S)
    assert state.status is Status.UP and state.resolves == 0 and state.backoff_cycles == 0


def replace_resolving(state: LinkState) -> LinkState:
    return link.replace(state, resolving=True)


def test_same_address_is_not_applied_and_errors_are_events() -> None:
    state = down_with_host()
    _, actions = step(state, ResolveResult(("198.51.100.9",)), 5.0, S)
    assert actions == []
    _, actions = step(state, ResolveResult(error="NXDOMAIN"), 5.0, S)
    assert actions == [ResolveFailed("peer.example.test: NXDOMAIN")]
    _, actions = step(state, SetEndpointResult("198.51.100.20:51820", ok=False, error="timed out"), 5.0, S)
    assert actions == [ResolveFailed("setting endpoint 198.51.100.20:51820 failed: timed out")]


def test_no_probe_target_triggers_handshake_instead() -> None:
    state, _ = step(LinkState(), Sample(0, 0, 25, 0.0, None, "198.51.100.9:51820", "p.test", 51820,
                                        handshake_target="192.0.2.65"), 0.0, S)
    _, actions = step(state, SetEndpointResult("198.51.100.20:51820", ok=True), 1.0, S)
    assert actions[-1] == TriggerHandshake("192.0.2.65")


def test_resolve_result_after_recovery_is_ignored() -> None:
    state = down_with_host()
    state, _ = step(state, ProbeResult(ok=True), 4.0, S)
    _, actions = step(state, ResolveResult(("198.51.100.20",)), 5.0, S)
    assert actions == []  # never override an endpoint while the link is healthy


@pytest.mark.parametrize("addresses,current,expected", [
    (("198.51.100.20",), "198.51.100.9:51820", "198.51.100.20"),
    (("fd00::20", "198.51.100.20"), "198.51.100.9:51820", "198.51.100.20"),  # same family first
    (("198.51.100.20", "fd00::20"), "[fd00::9]:51820", "fd00::20"),
    (("198.51.100.9", "198.51.100.20"), "198.51.100.9:51820", "198.51.100.20"),  # rotate past current
    (("198.51.100.9", "198.51.100.20"), "198.51.100.20:51820", "198.51.100.9"),
    (("198.51.100.9",), "198.51.100.9:51820", "198.51.100.9"),
    ((), None, None),
])
def test_choose_address(addresses: tuple[str, ...], current: str | None, expected: str | None) -> None:
    assert choose_address(addresses, current) == expected


def test_ipv6_endpoint_is_bracketed() -> None:
    state = down_with_host()
    _, actions = step(state, ResolveResult(("fd00::20",)), 5.0, S)
    assert actions == [SetEndpoint("[fd00::20]:51820", "198.51.100.9:51820")]


class PeerMachine(RuleBasedStateMachine):
    """Random observation sequences against the invariants the design promises."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = TrackSettings(ping_interval=2, ping_failafternum=2, cycles_wait=1, cycles_checking=2,
                                      cycles_checkperiod=1, cycles_slowcheckingperiod=6)
        self.state = LinkState()
        self.now = 0.0
        self.wall = 1_800_000_000.0
        self.handshake = int(self.wall) - 10
        self.rx = 0
        self.life = False

    def _apply(self, obs: link.Observation) -> None:
        before = self.state
        self.state, actions = step(self.state, obs, self.now, self.settings)
        # The Changed actions tell the move that was made: they chain from the status before to
        # the status after (a handler that reported a move it did not make fails here).
        changes = [a for a in actions if isinstance(a, Changed)]
        assert [c.old for c in changes] == [before.status, *(c.new for c in changes)][:len(changes)]
        assert (changes[-1].new if changes else before.status) is self.state.status
        if before.status is not None and self.state.status is Status.UP and before.status.is_down:
            assert self.state.resolves == 0 and self.state.backoff_cycles == 0  # recovery resets the schedule

    @rule(new_handshake=st.booleans(), rx_growth=st.booleans(), keepalive=st.sampled_from([0, 25]),
          hosted=st.booleans(), has_target=st.booleans(), advance=st.floats(1.0, 400), rand=st.floats(0, 0.999))
    def sample(self, new_handshake: bool, rx_growth: bool, keepalive: int, hosted: bool, has_target: bool,
               advance: float, rand: float) -> None:
        self.now += advance
        self.wall += advance
        previous = self.handshake
        if new_handshake:
            self.handshake = int(self.wall)
        if rx_growth:
            self.rx += 100
        first = self.state.first_seen is None
        new_handshake = self.handshake > previous
        before = self.state
        self._apply(Sample(self.handshake, self.rx, keepalive, self.wall, "192.0.2.2" if has_target else None,
                           "198.51.100.9:51820", "p.test" if hosted else None, 51820 if hosted else None, rand=rand))
        # Only a completed handshake (or a probe reply) is evidence that crossed both ways.
        self.life = new_handshake and not first
        if before.status is not None and before.status.is_down and not new_handshake:
            assert self.state.status is not Status.UP, "one-way evidence revoked a down verdict"

    @rule(ok=st.booleans())
    def probe(self, ok: bool) -> None:
        self._apply(ProbeResult(ok=ok))
        self.life = ok

    @rule(addresses=st.lists(st.sampled_from(["198.51.100.9", "198.51.100.20", "fd00::20"]), max_size=3),
          error=st.sampled_from([None, "NXDOMAIN", "timeout"]))
    def resolved(self, addresses: list[str], error: str | None) -> None:
        self._apply(ResolveResult(tuple(addresses), error))

    @rule(ok=st.booleans())
    def endpoint_set(self, ok: bool) -> None:
        self._apply(SetEndpointResult("198.51.100.20:51820", ok, None if ok else "failed"))

    @invariant()
    def backoff_within_cap(self) -> None:
        assert 0 <= self.state.backoff_cycles <= self.settings.cycles_slowcheckingperiod
        if self.state.next_resolve_at >= 0 and self.state.last_resolve_at >= 0:
            assert self.state.next_resolve_at - self.state.last_resolve_at <= self.settings.cycles_slowcheckingperiod

    @invariant()
    def life_means_not_down(self) -> None:
        if self.life:
            assert self.state.status is Status.UP


PeerMachine.TestCase.settings = hsettings(max_examples=300, stateful_step_count=40, deadline=None)
TestPeerMachine = PeerMachine.TestCase
