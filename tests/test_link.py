"""The pure link state machine: transitions, and properties over random observation sequences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wgtrack.config import TrackSettings
from wgtrack.link import Action, Changed, LinkState, Probe, ProbeResult, Sample, Status, step

WALL = 1_800_000_000.0
PROBES = TrackSettings(ping_interval=2, ping_failafternum=2)
NO_PROBES = TrackSettings(ping_interval=0)


def sample(handshake_age: float | None, rx: int, keepalive: int = 0, target: str | None = "192.0.2.2",
           wall: float = WALL) -> Sample:
    hs = 0 if handshake_age is None else int(wall - handshake_age)
    return Sample(hs, rx, keepalive, wall, target)


def run(settings: TrackSettings, *obs: Sample | ProbeResult) -> tuple[LinkState, list[Action]]:
    state, actions = LinkState(), list[Action]()
    for i, o in enumerate(obs):
        state, new = step(state, o, float(i), settings)
        actions.extend(new)
    return state, actions


def test_fresh_handshake_is_up() -> None:
    state, actions = run(NO_PROBES, sample(10, 100))
    assert state.status is Status.UP
    assert actions == [Changed(None, Status.UP, "handshake 10 s old")]


def test_idle_link_without_keepalive_is_not_down() -> None:
    # 0.2.0 called this down 181 s after the last handshake.
    state, _ = run(NO_PROBES, sample(10, 100), sample(500, 100, wall=WALL + 490), sample(5000, 100, wall=WALL + 4990))
    assert state.status is Status.IDLE


def test_old_handshake_with_keepalive_is_down_and_a_new_one_recovers_without_probes() -> None:
    state, _ = run(NO_PROBES, sample(10, 100, keepalive=25), sample(300, 100, keepalive=25, wall=WALL + 290))
    assert state.status is Status.DOWN
    state, actions = step(state, Sample(int(WALL + 299), 100, 25, WALL + 300, None), 3.0, NO_PROBES)
    assert state.status is Status.UP  # recovery with probes off (0.2.0 never recovered)
    assert actions == [Changed(Status.DOWN, Status.UP, "new handshake")]


def test_keepalive_threshold_includes_keepalive_and_margin() -> None:
    # 180 + 25 + 10 = 215: 210 s old is still fine, 220 s is not.
    assert run(NO_PROBES, sample(210, 1, keepalive=25))[0].status is Status.UP
    assert run(NO_PROBES, sample(220, 1, keepalive=25))[0].status is Status.DOWN


def test_probes_decide_down_after_failafternum_and_reply_recovers() -> None:
    fail = ProbeResult(ok=False, loss=1.0, reason="no reply")
    state, actions = run(PROBES, sample(5, 100))
    state, actions = step(state, fail, 1.0, PROBES)
    assert state.status is Status.UP and state.probe_failures == 1
    assert actions == [Probe("192.0.2.2")]  # confirm at once, not a ping_interval later
    state, actions = step(state, fail, 1.5, PROBES)
    assert state.status is Status.DOWN
    # A young handshake does not outvote failed probes.
    state, _ = step(state, sample(8, 100, wall=WALL + 3), 4.0, PROBES)
    assert state.status is Status.DOWN
    state, actions = step(state, ProbeResult(ok=True, rtt_ms=1.5), 5.0, PROBES)
    assert state.status is Status.UP and state.probe_failures == 0 and state.rtt_ms == 1.5


def test_probe_every_ping_interval_cycles_while_up() -> None:
    state, probes = LinkState(), 0
    for i in range(6):
        state, actions = step(state, sample(5, 100 + i), float(i), PROBES)
        probes += sum(isinstance(a, Probe) for a in actions)
        if any(isinstance(a, Probe) for a in actions):
            state, _ = step(state, ProbeResult(ok=True, rtt_ms=1.0), float(i), PROBES)
    assert probes == 3


def test_no_probe_without_target() -> None:
    _, actions = run(PROBES, sample(5, 100, target=None))
    assert not any(isinstance(a, Probe) for a in actions)


def test_tx_is_not_evidence_and_rx_growth_is() -> None:
    state, _ = run(NO_PROBES, sample(400, 100, keepalive=25), sample(401, 100, keepalive=25, wall=WALL + 1))
    assert state.status is Status.DOWN
    state, _ = step(state, sample(402, 150, keepalive=25, wall=WALL + 2), 5.0, NO_PROBES)
    assert state.status is Status.UP


observations = st.one_of(
    st.builds(lambda age, rx, ka, t: ("s", age, rx, ka, t),
              st.one_of(st.none(), st.floats(0, 10_000)), st.integers(0, 10**6), st.sampled_from([0, 25]),
              st.sampled_from([None, "192.0.2.2"])),
    st.builds(lambda ok: ("p", ok), st.booleans()),
)


@given(st.lists(observations, max_size=40), st.sampled_from([PROBES, NO_PROBES]))
def test_no_sequence_raises_and_life_means_up(seq: list[tuple[object, ...]], settings: TrackSettings) -> None:
    state, wall, now = LinkState(), WALL, 0.0
    for obs in seq:
        now += 1
        wall += 1
        if obs[0] == "s":
            _, age, rx, ka, target = obs
            hs = 0 if age is None else int(wall - float(age))  # type: ignore[arg-type]
            previous = state
            state, _ = step(state, Sample(hs, int(rx), int(ka), wall, target), now, settings)  # type: ignore[arg-type,call-overload]
            new_handshake = hs > previous.latest_handshake and previous.first_seen is not None
            rx_grew = 0 <= previous.rx_bytes < int(rx)  # type: ignore[call-overload]
            if new_handshake or rx_grew:
                assert state.status is Status.UP
        else:
            state, _ = step(state, ProbeResult(ok=bool(obs[1])), now, settings)
            if obs[1]:
                assert state.status is Status.UP
        assert state.probe_failures >= 0
