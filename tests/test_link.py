"""The pure link state machine: transitions, and properties over random observation sequences."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgtrack import link
from wgtrack.config import TrackSettings
from wgtrack.link import (
    KNOCK_GRACE_S,
    Action,
    Changed,
    Diagnosed,
    EndpointChanged,
    LinkState,
    Probe,
    ProbeResult,
    ProbeUnderlay,
    Resolve,
    ResolveResult,
    Roamed,
    Sample,
    Seen,
    SetEndpoint,
    SetEndpointResult,
    Status,
    Target,
    TargetVerdict,
    Tick,
    UnderlayResult,
    machine,
    replace,
    step,
)

WALL = 1_800_000_000.0
ENDPOINT = "198.51.100.9:51820"  # WireGuard can send to it: probes are possible
PROBES = TrackSettings(ping_interval=2, ping_failafternum=2)
NO_PROBES = TrackSettings(ping_interval=0)


def sample(handshake_age: float | None, rx: int, keepalive: int = 0, target: str | None = "192.0.2.2",
           wall: float = WALL) -> Sample:
    hs = 0 if handshake_age is None else int(wall - handshake_age)
    return Sample(hs, rx, keepalive, wall, target, ENDPOINT)


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
    state, actions = step(state, Sample(int(WALL + 299), 100, 25, WALL + 300, None, ENDPOINT), 3.0, NO_PROBES)
    assert state.status is Status.UP  # recovery with probes off (0.2.0 never recovered)
    assert actions == [Changed(Status.DOWN, Status.UP, "new handshake")]


def test_keepalive_threshold_includes_keepalive_and_margin() -> None:
    # 180 + 25 + 10 = 215: 210 s old is still fine, 220 s is not.
    assert run(NO_PROBES, sample(210, 1, keepalive=25))[0].status is Status.UP
    assert run(NO_PROBES, sample(220, 1, keepalive=25))[0].status is Status.DOWN


def test_probes_decide_down_after_failafternum_and_reply_recovers() -> None:
    fail = ProbeResult(ok=False, loss=1.0, reason="no reply")
    state, actions = run(PROBES, sample(5, 100), ProbeResult(ok=True, rtt_ms=1.0))
    state, actions = step(state, fail, 1.0, PROBES)
    assert state.status is Status.UP and state.probe_failures == 1
    assert actions == [Probe("192.0.2.2", 9)]  # confirm at once, with a burst, not a ping_interval later
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


def test_tx_and_rx_do_not_revoke_down_but_a_completed_handshake_does() -> None:
    state, _ = run(NO_PROBES, sample(400, 100, keepalive=25), sample(401, 100, keepalive=25, wall=WALL + 1))
    assert state.status is Status.DOWN
    # rx growth without a session: handshake initiations from a peer whose answers get lost.
    state, _ = step(state, sample(402, 150, keepalive=25, wall=WALL + 2), 5.0, NO_PROBES)
    assert state.status is Status.DOWN
    state, _ = step(state, sample(1, 250, keepalive=25, wall=WALL + 3), 6.0, NO_PROBES)
    assert state.status is Status.UP


def test_rx_growth_within_a_session_is_life_where_probes_cannot_decide() -> None:
    short = TrackSettings(ping_interval=0, handshake_timeout_s=2)  # stale after 2 + 10 s
    hs = int(WALL) - 10

    def at(t: float, rx: int) -> Sample:
        return Sample(hs, rx, 0, WALL + t, "192.0.2.2", ENDPOINT)

    state, _ = run(short, at(0, 100), at(50, 100))
    assert state.status is Status.IDLE  # 60 s old, no traffic: no evidence either way
    state, _ = step(state, at(60, 200), 9.0, short)  # 70 s old: a session exists, and rx grew
    assert state.status is Status.UP
    state, _ = run(short, at(0, 100), at(200, 100), at(210, 200))  # 220 s old: no usable key, no session
    assert state.status is Status.IDLE


observations = st.one_of(
    st.builds(lambda age, rx, ka, t: ("s", age, rx, ka, t),
              st.one_of(st.none(), st.floats(0, 10_000)), st.integers(0, 10**6), st.sampled_from([0, 25]),
              st.sampled_from([None, "192.0.2.2"])),
    st.builds(lambda ok: ("p", ok), st.booleans()),
    st.builds(lambda age: ("h", age), st.floats(0, 400)),  # a handshake seen by the nflog trigger
    st.just(("t",)),  # the fast lane's tick
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
            state, _ = step(state, Sample(hs, int(rx), int(ka), wall, target, ENDPOINT), now, settings)  # type: ignore[arg-type,call-overload]
            new_handshake = hs > previous.latest_handshake and previous.first_seen is not None
            if new_handshake and not previous.probe_failures:
                assert state.status is Status.UP
            if previous.status is not None and previous.status.is_down and not new_handshake:
                assert state.status is not Status.UP  # rx growth is one-way: it never revokes down
        elif obs[0] == "h":
            previous = state
            hs = int(wall - float(obs[1]))  # type: ignore[arg-type]
            state, _ = step(state, Seen(hs, ENDPOINT, wall), now, settings)
            if previous.status is not None and hs > previous.latest_handshake and not previous.probe_failures:
                assert state.status is Status.UP
        elif obs[0] == "t":
            state, _ = step(state, Tick(wall), now, settings)
        else:
            state, _ = step(state, ProbeResult(ok=bool(obs[1])), now, settings)
            if obs[1]:
                assert state.status is Status.UP
        # Failures that reach ping_failafternum against an answering target (still the peer's
        # target) always take the link down: never up (or idle) with the count spent.
        probed = settings.ping_interval > 0 and state.last_sample is not None \
            and state.last_sample.probe_target is not None
        assert not probed or state.target is not Target.ANSWERS or state.probe_failures < settings.ping_failafternum \
            or (state.status is not None and state.status.is_down)


# ---- evidence that crossed both ways (issue: a peer that drops ICMP is not dead) ----

FAIL = ProbeResult(ok=False, loss=1.0, reason="no reply")
OK = ProbeResult(ok=True, rtt_ms=1.0)


def probed_down() -> LinkState:
    """Up with an answering target, then two failed probes: down."""
    state, _ = run(PROBES, sample(5, 100), OK, FAIL, FAIL)
    assert state.status is Status.DOWN and state.target is Target.ANSWERS
    return state


def test_a_target_that_never_answered_is_not_evidence() -> None:
    # A healthy spoke whose firewall drops ICMP: handshakes young, probes never answered.
    state, actions = run(PROBES, sample(5, 100), FAIL, FAIL)
    assert state.status is Status.UP and state.probe_silent
    assert [a for a in actions if isinstance(a, TargetVerdict)] == [
        TargetVerdict("192.0.2.2", Target.SILENT, "never answered (2 probes)")]
    assert not [a for a in actions if isinstance(a, Changed) and a.new is not Status.UP]
    # More failures change nothing and are not logged again; the verdict stays up.
    for i in range(1, 60):
        state, actions = step(state, sample(5 + i % 100, 100 + i, wall=WALL + i), float(i), PROBES)
        for action in actions:
            if isinstance(action, Probe):
                state, more = step(state, FAIL, float(i), PROBES)
                actions += more
        assert not [a for a in actions if isinstance(a, (Changed, TargetVerdict))]
        assert state.status is Status.UP


def test_a_completed_handshake_after_failed_probes_marks_the_target_silent_and_is_up() -> None:
    state = probed_down()
    state, actions = step(state, sample(0, 150, wall=WALL + 10), 10.0, PROBES)
    assert state.status is Status.UP and state.probe_silent
    assert Changed(Status.DOWN, Status.UP, "new handshake") in actions
    # The verdict is announced when the next probe fails too (once) ...
    state, actions = step(state, FAIL, 11.0, PROBES)
    assert actions == [TargetVerdict("192.0.2.2", Target.SILENT, "2 probes unanswered while a handshake completed")]
    # ... and failed probes to a silent target are no evidence any more ...
    state, actions = step(state, FAIL, 11.5, PROBES)
    assert state.status is Status.UP and actions == []
    # ... until it answers again: then probes decide once more.
    state, actions = step(state, OK, 12.0, PROBES)
    assert state.target is Target.ANSWERS and not state.probe_silent
    assert actions == [TargetVerdict("192.0.2.2", Target.ANSWERS, "probes decide again")]


def test_the_end_of_an_outage_is_no_silent_target() -> None:
    # The handshake lands just before the first reply: silent for a moment, never announced.
    state = probed_down()
    state, actions = step(state, sample(0, 150, wall=WALL + 10), 10.0, PROBES)
    state, more = step(state, OK, 10.5, PROBES)
    assert state.target is Target.ANSWERS and state.status is Status.UP
    assert not [a for a in actions + more if isinstance(a, TargetVerdict)]


def test_a_handshake_older_than_the_failures_does_not_revoke_down() -> None:
    state = probed_down()
    # The handshake completed one second before the failing run began: it says nothing about now.
    hs = int(state.failing_since) - 1
    state, _ = step(state, Sample(hs, 150, 0, WALL + 3, "192.0.2.2", ENDPOINT), 4.0, PROBES)
    assert state.status is Status.DOWN and not state.probe_silent


def test_a_peer_that_only_knocks_is_never_up() -> None:
    # Handshake initiations (148 bytes each) arrive, none completes: no session, rx grows.
    state, actions = LinkState(), list[Action]()
    for i in range(30):
        state, new = step(state, sample(None, 148 * i, wall=WALL + i), float(i), PROBES)
        actions += new
        for action in new:
            if isinstance(action, Probe):
                state, more = step(state, FAIL, float(i), PROBES)
                actions += more
        assert state.status is not Status.UP
    assert state.status is Status.DOWN
    assert Changed(Status.IDLE, Status.DOWN, f"no handshake completed {KNOCK_GRACE_S:.0f} s after our probe") \
        in actions
    # The drop is lifted: a handshake completes and the link is up.
    state, actions = step(state, sample(0, 148 * 31, wall=WALL + 31), 31.0, PROBES)
    assert state.status is Status.UP


def test_a_knock_counts_from_the_failed_probe_not_from_the_request() -> None:
    """On a big hub a never-up peer's probe may wait minutes for its turn (probe_rate): the
    knock's grace runs from the failure that came back, so a probe not yet sent takes no link
    down; once it failed, KNOCK_GRACE_S without a handshake does."""
    state, actions = step(LinkState(), sample(None, 0), 0.0, PROBES)
    assert any(isinstance(a, Probe) for a in actions) and state.status is Status.IDLE
    for t in range(1, 120):  # two minutes of cycles while the probe waits in the queue
        state, actions = step(state, sample(None, 0, wall=WALL + t), float(t), PROBES)
        assert state.status is Status.IDLE, f"down at {t} s with no probe sent"
    state, _ = step(state, FAIL, 120.0, PROBES)  # it was sent at last, and failed
    assert state.knock_since == 120.0
    state, _ = step(state, sample(None, 0, wall=WALL + 135), 135.0, PROBES)
    assert state.status is Status.IDLE
    state, actions = step(state, sample(None, 0, wall=WALL + 136), 136.0, PROBES)
    assert state.status is Status.DOWN
    assert Changed(Status.IDLE, Status.DOWN, f"no handshake completed {KNOCK_GRACE_S:.0f} s after our probe") \
        in actions
    # Down, the knock is spent: the peer leaves the ones the clock moves (a hub's thousands of
    # departed peers are not looked at every cycle), and stays down.
    assert state.knock_since is None
    assert link.timeless(state, WALL + 200, 200.0, PROBES)
    state, _ = step(state, sample(None, 0, wall=WALL + 200), 200.0, PROBES)
    assert state.status is Status.DOWN


def test_a_new_probe_target_starts_unproven() -> None:
    state = probed_down()
    state, _ = step(state, sample(5, 100, target="192.0.2.9", wall=WALL + 5), 5.0, PROBES)
    assert state.target is Target.UNPROVEN and state.probe_failures == 0


@given(st.lists(st.sampled_from(["rx", "fail", "quiet"]), min_size=1, max_size=60))
def test_rx_growth_and_failed_probes_without_a_handshake_stay_down(seq: list[str]) -> None:
    state, rx, wall, now = probed_down(), 100, WALL + 3, 4.0
    hs = state.latest_handshake
    for what in seq:
        now, wall = now + 1, wall + 1
        if what == "fail":
            state, _ = step(state, FAIL, now, PROBES)
        else:
            rx += 100 if what == "rx" else 0
            state, _ = step(state, Sample(hs, rx, 25, wall, "192.0.2.2", ENDPOINT), now, PROBES)
        assert state.status is not None and state.status.is_down, what


@given(st.lists(st.tuples(st.integers(0, 1000), st.floats(0.5, 120)), min_size=1, max_size=40))
def test_rx_growth_never_revokes_down_while_probes_are_usable_and_failing(seq: list[tuple[int, float]]) -> None:
    state, rx, now, wall = probed_down(), 100, 4.0, WALL + 3
    hs = state.latest_handshake  # no handshake completes; the session ages out as time passes
    for grow, advance in seq:
        now, wall, rx = now + advance, wall + advance, rx + grow
        state, actions = step(state, Sample(hs, rx, 0, wall, "192.0.2.2", ENDPOINT), now, PROBES)
        for action in actions:
            if isinstance(action, Probe):
                state, _ = step(state, FAIL, now, PROBES)
        assert state.status is not None and state.status.is_down
        assert not state.probe_silent


# ---- probe policy for big hubs ----

def test_a_peer_without_endpoint_is_never_probed() -> None:
    state, actions = LinkState(), list[Action]()
    for i in range(10):
        state, new = step(state, Sample(0, 0, 0, WALL + i, "192.0.2.2", None), float(i), PROBES)
        actions += new
    assert not any(isinstance(a, Probe) for a in actions)  # WireGuard could not send it anyway
    assert state.status is Status.IDLE  # never connected, nothing to say: not a false "down"


def test_a_down_peer_is_probed_every_cycle_for_a_minute_then_less_and_less() -> None:
    """With the fast lane off, the cycle probes down peers on the same policy; with it on, the
    cycle leaves them to the fast lane (the next test)."""
    lane_off = dataclasses.replace(PROBES, down_probe_interval_s=0)
    state = probed_down()  # down at t = 0 (monotonic), probes from then on
    sent: list[float] = []
    for t in range(1, 601):  # ten minutes of 1 s cycles, every probe failing
        state, actions = step(state, Sample(state.latest_handshake, 100, 0, WALL + t, "192.0.2.2", ENDPOINT),
                              float(t), lane_off)
        for action in actions:
            if isinstance(action, Probe):
                sent.append(float(t))
                state, _ = step(state, FAIL, float(t), lane_off)
        assert state.status is not None and state.status.is_down
    fast = [t for t in sent if t - state.down_since <= 60]
    assert fast == [float(t) for t in range(1, int(state.down_since) + 61)]  # the fast lane: every cycle
    gaps = [b - a for a, b in itertools.pairwise(sent) if a - state.down_since > 60]
    assert gaps == sorted(gaps) and max(gaps) == 60  # backing off, capped at a minute
    # the fast lane on (the default): the cycle sends none, and the peer's state stays the same
    # object cycle after cycle (the tracker's fast path)
    down = probed_down()
    reading = Sample(down.latest_handshake, 100, 0, WALL + 1, "192.0.2.2", ENDPOINT)
    down, actions = step(down, reading, 1.0, PROBES)
    assert not any(isinstance(a, Probe) for a in actions)
    assert link.unchanged(down, WALL + 2, 2.0, PROBES)
    assert step(down, reading._replace(wall=WALL + 2), 2.0, PROBES) == (down, [])
    assert len(sent) == 73  # instead of 600


def test_an_endpoint_change_wgtrack_did_not_make_is_a_roam() -> None:
    first = Sample(int(WALL - 10), 100, 25, WALL, "192.0.2.2", "198.51.100.9:51820")
    state, _ = step(LinkState(), first, 0.0, PROBES)
    moved = Sample(int(WALL - 5), 200, 25, WALL + 5, "192.0.2.2", "198.51.100.77:40000")
    state, actions = step(state, moved, 5.0, PROBES)
    assert [a for a in actions if isinstance(a, Roamed)] == [Roamed("198.51.100.9:51820", "198.51.100.77:40000")]
    assert state.endpoint == "198.51.100.77:40000"
    same = Sample(int(WALL - 5), 300, 25, WALL + 10, "192.0.2.2", "198.51.100.77:40000")
    assert not [a for a in step(state, same, 10.0, PROBES)[1] if isinstance(a, Roamed)]
    appeared = step(LinkState(), Sample(0, 0, 0, WALL, "192.0.2.2", None), 0.0, PROBES)[0]
    assert not [a for a in step(appeared, first, 1.0, PROBES)[1] if isinstance(a, Roamed)]  # learnt, not moved


def test_an_endpoint_wgtrack_applies_is_no_roam_even_when_a_dump_sees_it_first() -> None:
    settings = TrackSettings(ping_interval=1, ping_failafternum=1, cycles_wait=0)
    old = "198.51.100.9:51820"
    first = Sample(int(WALL - 10), 100, 0, WALL - 1, "192.0.2.2", old, hostname="peer.test", port=51820)
    state = step(LinkState(), first, -1.0, settings)[0]
    state = step(state, ProbeResult(ok=True, rtt_ms=1.0), -0.5, settings)[0]  # the target answers
    t = 0.0
    for i in range(30):  # then probes fail until re-resolution is asked for
        s = Sample(int(WALL - 10), 100, 0, WALL + i, "192.0.2.2", old, hostname="peer.test", port=51820)
        state, actions = step(state, s, t, settings)
        state, more = step(state, ProbeResult(ok=False, reason="no reply"), t + 0.5, settings)
        t += 1.0
        if any(isinstance(a, Resolve) for a in actions + more):
            break
    else:
        raise AssertionError("never re-resolved")
    state, actions = step(state, ResolveResult(("198.51.100.12",)), t + 0.1, settings)
    assert actions == [SetEndpoint("198.51.100.12:51820", old)]
    # the dump is read after `wg set` ran but before its result is stepped
    seen = Sample(int(WALL - 10), 100, 0, WALL + 40, "192.0.2.2", "198.51.100.12:51820", hostname="peer.test",
                  port=51820)
    state, actions = step(state, seen, t + 0.2, settings)
    assert not [a for a in actions if isinstance(a, Roamed)]
    state, actions = step(state, SetEndpointResult("198.51.100.12:51820", True), t + 0.3, settings)
    assert EndpointChanged(old, "198.51.100.12:51820") in actions and state.setting_endpoint is None


def _down_with(settings: TrackSettings) -> tuple[LinkState, float]:
    """A peer whose answering target stopped answering: down at t = 2."""
    first = Sample(int(WALL - 10), 100, 0, WALL, "192.0.2.2", ENDPOINT)
    state = step(LinkState(), first, 0.0, settings)[0]
    state = step(state, ProbeResult(ok=True, rtt_ms=1.0), 0.1, settings)[0]
    for t in (1.0, 2.0):
        state = step(state, Sample(int(WALL - 10), 100, 0, WALL + t, "192.0.2.2", ENDPOINT), t, settings)[0]
        state = step(state, ProbeResult(ok=False, reason="no reply"), t + 0.1, settings)[0]
    assert state.status is Status.DOWN
    return state, 2.0


def test_underlay_probe_only_when_asked_while_down_and_once_a_minute() -> None:
    off = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False)
    state, _ = _down_with(off)
    actions = step(state, Sample(int(WALL - 10), 100, 0, WALL + 3, "192.0.2.2", ENDPOINT), 3.0, off)[1]
    assert not [a for a in actions if isinstance(a, ProbeUnderlay)]  # off by default: privacy

    on = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False, underlay_probe=True)
    state, _ = _down_with(on)
    asked = []
    for second in range(3, 130):
        sample = Sample(int(WALL - 10), 100, 0, WALL + second, "192.0.2.2", ENDPOINT)
        state, actions = step(state, sample, float(second), on)
        asked += [(second, a) for a in actions if isinstance(a, ProbeUnderlay)]
    assert asked == [(3, ProbeUnderlay("198.51.100.9")), (63, ProbeUnderlay("198.51.100.9")),
                     (123, ProbeUnderlay("198.51.100.9"))]


def test_underlay_result_names_the_cause_once_and_up_clears_it() -> None:
    on = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False, underlay_probe=True)
    state, _ = _down_with(on)
    state, actions = step(state, UnderlayResult(True, "198.51.100.9"), 3.0, on)
    assert actions == [Diagnosed("tunnel_only", "198.51.100.9")] and state.diagnosis == "tunnel_only"
    assert step(state, UnderlayResult(True, "198.51.100.9"), 63.0, on)[1] == []  # said once
    state, actions = step(state, UnderlayResult(False, "198.51.100.9"), 123.0, on)
    assert actions == [Diagnosed("host_unreachable", "198.51.100.9")]
    state = step(state, ProbeResult(ok=True, rtt_ms=1.0), 124.0, on)[0]  # it answers: up
    assert state.status is Status.UP
    state = step(state, Sample(int(WALL + 120), 200, 0, WALL + 125, "192.0.2.2", ENDPOINT), 125.0, on)[0]
    assert state.diagnosis is None
    assert step(state, UnderlayResult(True, "198.51.100.9"), 126.0, on)[1] == []  # late answer: nothing to say


def test_fast_lane_probes_a_down_peer_between_cycles_then_backs_off() -> None:
    settings = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False, down_probe_interval_s=1.0)
    state, down_at = _down_with(settings)
    asked = []
    t = down_at
    while t < down_at + 200:
        t = round(t + 0.25, 2)
        state, actions = step(state, Tick(WALL + t), t, settings)
        asked += [t for a in actions if isinstance(a, Probe)]
    first_minute = [x for x in asked if x - down_at <= 60]
    assert len(first_minute) == 60  # one a second (the failed probe at t = 2 counts as the last)
    later = [b - a for a, b in itertools.pairwise(x for x in asked if x - down_at > 60)]
    assert later and all(gap >= 15 for gap in later)  # a quarter of the time down, then up to 60 s
    up = step(state, ProbeResult(ok=True, rtt_ms=1.0), t + 0.1, settings)[0]
    assert up.status is Status.UP
    assert step(up, Tick(WALL + t + 1), t + 1, settings)[1] == []  # up: nothing for the fast lane
    off = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False, down_probe_interval_s=0)
    state, _ = _down_with(off)
    assert step(state, Tick(WALL + 10), 10.0, off)[1] == []


def test_probe_interval_puts_up_peers_on_their_own_clock() -> None:
    timed = TrackSettings(ping_interval=1, ping_failafternum=2, probe_interval_s=2.0)
    first = Sample(int(WALL - 10), 100, 0, WALL, "192.0.2.2", ENDPOINT)
    state, actions = step(LinkState(), first, 0.0, timed)
    assert Probe("192.0.2.2") in actions
    state = step(state, ProbeResult(ok=True, rtt_ms=1.0), 0.1, timed)[0]
    asked = []
    for quarter in range(1, 41):  # ten seconds of fast-lane ticks, no dump
        t = quarter / 4
        state, actions = step(state, Tick(WALL + t), t, timed)
        asked += [t for a in actions if isinstance(a, Probe)]
    assert asked == [2.0, 4.0, 6.0, 8.0, 10.0]
    # a dump between two timed probes does not add one
    assert not [a for a in step(state, Sample(int(WALL - 10), 100, 0, WALL + 10.5, "192.0.2.2", ENDPOINT),
                                10.5, timed)[1] if isinstance(a, Probe)]
    cycles = TrackSettings(ping_interval=1, ping_failafternum=2)  # probe_interval 0: the cycle's pace only
    state = step(step(LinkState(), first, 0.0, cycles)[0], ProbeResult(ok=True, rtt_ms=1.0), 0.1, cycles)[0]
    assert step(state, Tick(WALL + 5), 5.0, cycles)[1] == []


# ---- the nflog trigger: a handshake read between cycles ----

def test_a_handshake_seen_between_cycles_brings_a_down_peer_up_at_once() -> None:
    state = probed_down()
    assert state.status is not None and state.status.is_down
    hs = int(WALL) + 100
    state2, actions = step(state, Seen(hs, ENDPOINT, WALL + 101), 50.0, PROBES)
    # probes to an answering target failed: what the handshake means is the cycle's to decide
    assert state2.status is state.status and state2.latest_handshake == state.latest_handshake
    idle_down = replace(state, probe_failures=0)
    up, actions = step(idle_down, Seen(hs, ENDPOINT, WALL + 101), 50.0, PROBES)
    assert up.status is Status.UP and up.latest_handshake == hs
    assert [a.event for a in actions if isinstance(a, Changed)] == ["peer_up"]
    assert up.quiet_cycles == 0 and up.cycles_to_probe == idle_down.cycles_to_probe  # no cycle counted


def test_an_idle_peer_connecting_is_a_peer_up_event() -> None:
    quiet = TrackSettings(ping_interval=0)
    state, _ = run(quiet, Sample(0, 0, 0, WALL, None, None))
    assert state.status is Status.IDLE
    hs = int(WALL) + 5
    for observation in (Seen(hs, ENDPOINT, WALL + 5), Sample(hs, 148, 0, WALL + 5, None, ENDPOINT)):
        up, actions = step(state, observation, 5.0, quiet)
        changed = [a for a in actions if isinstance(a, Changed)]
        assert up.status is Status.UP and [c.event for c in changed] == ["peer_up"]
        assert changed[0].old is Status.IDLE and changed[0].connected
    # a peer first seen with a young handshake is up, but it did not just connect: no event
    fresh, actions = step(LinkState(), Sample(int(WALL) - 5, 148, 0, WALL, None, ENDPOINT), 0.0, quiet)
    assert fresh.status is Status.UP and [a.event for a in actions if isinstance(a, Changed)] == [None]


def test_seen_reports_a_roam_once_and_ignores_unknown_peers() -> None:
    state, _ = run(PROBES, sample(5, 100))
    roamed, actions = step(state, Seen(state.latest_handshake, "198.51.100.99:4000", WALL + 1), 1.0, PROBES)
    assert [a for a in actions if isinstance(a, Roamed)] == [Roamed(ENDPOINT, "198.51.100.99:4000")]
    _, again = step(roamed, Sample(state.latest_handshake, 100, 0, WALL + 2, "192.0.2.2", "198.51.100.99:4000"),
                    2.0, PROBES)
    assert not [a for a in again if isinstance(a, Roamed)]  # the cycle does not report it twice
    assert step(LinkState(), Seen(int(WALL), ENDPOINT, WALL), 0.0, PROBES) == (LinkState(), [])


# ---- the fast path: an unchanged dump line, only time passed ----

readings = st.builds(
    lambda age, rx, ka, target, endpoint: Sample(0 if age is None else int(WALL - age), rx, ka, WALL, target, endpoint),
    st.one_of(st.none(), st.integers(0, 400)), st.integers(0, 3), st.sampled_from([0, 25]),
    st.sampled_from([None, "192.0.2.2"]), st.sampled_from([None, ENDPOINT]))
UNDERLAY = TrackSettings(ping_interval=2, ping_failafternum=2, underlay_probe=True)


def replay(history: list[tuple[Sample, int, bool]], settings: TrackSettings) -> tuple[LinkState, float, float]:
    """Readings ``gap`` seconds apart, each probe (and underlay probe) they ask for answered
    ``ok`` or not: the state, the monotonic time and the wall time at the end."""
    state, now, wall = LinkState(), 0.0, WALL
    for reading, gap, ok in history:
        now, wall = now + gap, wall + gap
        state, actions = step(state, reading._replace(wall=wall), now, settings)
        if any(isinstance(a, Probe) for a in actions):
            state, _ = step(state, ProbeResult(ok=ok), now, settings)
        if any(isinstance(a, ProbeUnderlay) for a in actions):
            state, _ = step(state, UnderlayResult(ok=ok), now, settings)
    return state, now, wall


@given(st.lists(st.tuples(readings, st.integers(1, 400), st.booleans()), min_size=1, max_size=12),
       st.sampled_from([PROBES, NO_PROBES, UNDERLAY]), st.lists(st.integers(1, 300), min_size=1, max_size=6))
def test_the_fast_path_gives_what_the_full_step_gives(history: list[tuple[Sample, int, bool]],
                                                      settings: TrackSettings, later: list[int]) -> None:
    """Wherever ``unchanged`` says time alone changes nothing, the full step with the same
    reading at that time returns the very same state object and no action."""
    state, now, wall = replay(history, settings)
    forever = False
    for gap in later:  # the same line, cycle after cycle
        now, wall = now + gap, wall + gap
        assert state.last_sample is not None
        fast = link.unchanged(state, wall, now, settings)
        full, actions = step(state, state.last_sample._replace(wall=wall, rand=0.5), now, settings)
        if fast or forever:
            assert full is state and actions == []
        forever = forever or link.timeless(state, wall, now, settings)
        state = full


def test_idle_road_warriors_and_quiet_peers_take_the_fast_path() -> None:
    """The hub's common cases: never connected (no endpoint), and idle after traffic; each
    allocates nothing cycle after cycle. A probed peer never takes it (probes count cycles)."""
    never = Sample(0, 0, 0, WALL, "192.0.2.2", None)
    idle_after = Sample(int(WALL) - 1000, 5000, 0, WALL, None, ENDPOINT)
    for reading, settings in ((never, PROBES), (idle_after, NO_PROBES)):
        state, _ = step(LinkState(), reading, 0.0, settings)
        state, _ = step(state, reading._replace(wall=WALL + 2), 2.0, settings)
        assert state.status is Status.IDLE
        for t in range(4, 40, 2):
            assert link.unchanged(state, WALL + t, float(t), settings)
            same, actions = step(state, reading._replace(wall=WALL + t), float(t), settings)
            assert same is state and actions == []
    probed, _ = step(LinkState(), sample(5, 100), 0.0, PROBES)
    assert not link.unchanged(probed, WALL + 2, 2.0, PROBES)
    # a young handshake keeps a quiet peer up only until the stale limit: unchanged, not timeless
    young = Sample(int(WALL) - 5, 100, 0, WALL, None, ENDPOINT)
    up, _ = step(step(LinkState(), young, 0.0, NO_PROBES)[0], young._replace(wall=WALL + 1), 1.0, NO_PROBES)
    assert up.status is Status.UP and link.unchanged(up, WALL + 2, 2.0, NO_PROBES)
    assert not link.timeless(up, WALL + 2, 2.0, NO_PROBES)
    assert step(up, young._replace(wall=WALL + 200), 200.0, NO_PROBES)[0].status is Status.IDLE


@given(st.lists(st.tuples(readings, st.integers(1, 90), st.booleans()), min_size=1, max_size=10),
       st.sampled_from([PROBES, TrackSettings(ping_interval=2, ping_failafternum=2, probe_interval_s=3.0),
                        TrackSettings(ping_interval=1, ping_failafternum=1, down_probe_interval_s=2.5)]),
       st.integers(0, 4))
def test_tick_due_is_when_the_fast_lane_first_probes(history: list[tuple[Sample, int, bool]],
                                                      settings: TrackSettings, start: int) -> None:
    """The fast lane's heap is keyed by ``tick_due``: no Tick before it asks for anything, and a
    Tick at it asks for a probe (checked on a 0.05 s grid, from any point of a history)."""
    state, now, wall = replay(history, settings)
    due = link.tick_due(state, settings)
    if due == float("inf"):
        assert step(state, Tick(wall + 1000), now + 1000, settings)[1] == []
        return
    t = now + start / 100
    while t < due - 1e-6:  # at most 300 s of 0.05 s steps (the longest gap is a minute)
        assert step(state, Tick(wall + t - now), t, settings)[1] == [], (t, due)
        t += 0.05
    fired = step(state, Tick(wall + due + 1e-6 - now), due + 1e-6, settings)[1]
    assert fired and isinstance(fired[0], Probe)


@pytest.mark.parametrize("gap", [1.0, 2.5, 0.3])
def test_the_heap_schedule_probes_when_looking_every_tick_would(gap: float) -> None:
    """A down peer for 20 minutes: jumping from ``tick_due`` to ``tick_due`` (the tracker's
    heap) gives the very probe times that looking at it on a fine grid gives."""
    settings = TrackSettings(ping_interval=1, ping_failafternum=2, reresolve=False, down_probe_interval_s=gap)
    start, down_at = _down_with(settings)
    grid, state, t = [], start, down_at
    while t < down_at + 1200:
        t = round(t + 0.01, 2)
        state, actions = step(state, Tick(WALL + t), t, settings)
        grid += [t for a in actions if isinstance(a, Probe)]
    jumps, state = [], start
    while True:
        due = link.tick_due(state, settings)
        t = math.ceil(due * 100 - 1e-6) / 100  # the grid's first point at or after it
        if t >= down_at + 1200:
            break
        state, actions = step(state, Tick(WALL + t), t, settings)
        if not actions:  # float rounding exactly at the due time: the next grid point asks
            t = round(t + 0.01, 2)
            state, actions = step(state, Tick(WALL + t), t, settings)
        assert actions, f"nothing asked at {t} (due {due})"
        jumps.append(t)
    assert jumps == grid and len(grid) > 20


def test_urgent_probes_are_up_links_and_the_first_minute_down_of_links_that_were_up() -> None:
    down = probed_down()
    assert link.urgent(run(PROBES, sample(5, 100))[0], 0.0)  # up
    assert link.urgent(down, down.down_since + link.DOWN_FAST_S)
    assert not link.urgent(down, down.down_since + link.DOWN_FAST_S + 0.1)  # long down: the slow kind
    never = down._replace(was_up=False)  # a departed peer, down since wgtrack started
    assert not link.urgent(never, never.down_since)
    assert not link.urgent(LinkState(), 0.0)  # new


def test_only_a_burst_confirms_a_failure() -> None:
    """A lone echo lost while the confirmation is under way is not the confirmation: only a
    burst of confirm_pings unanswered makes the second failure (docs/link-state.md, Flapping)."""
    lone = ProbeResult(ok=False, loss=1.0, reason="no reply", sent=1)
    burst = ProbeResult(ok=False, loss=1.0, reason="no reply", sent=9)
    state, _ = run(PROBES, sample(5, 100), ProbeResult(ok=True, rtt_ms=1.0, sent=1))
    state, actions = step(state, lone, 1.0, PROBES)
    assert state.probe_failures == 1 and actions == [Probe("192.0.2.2", 9)]
    state, actions = step(state, lone, 1.2, PROBES)  # sent before the first failure was known
    assert state.status is Status.UP and state.probe_failures == 1 and actions == []
    state, _ = step(state, burst, 3.6, PROBES)
    assert state.status is Status.DOWN


def test_a_handshake_older_than_the_failed_probe_does_not_end_the_confirmation() -> None:
    """A break just after a handshake: the next dump shows that handshake as new, but it
    completed before the failed probe was sent, so the run of failures goes on (the lab saw the
    down come one burst late, 6.5 s after the break); one completed after it does end the run."""
    s = TrackSettings(ping_interval=1, probe_interval_s=1.0, ping_failafternum=2, ping_timeout_s=1.0)
    state, _ = run(s, sample(5, 100), ProbeResult(ok=True, rtt_ms=1.0, sent=1))  # sample at t=0, wall WALL
    state, _ = step(state, ProbeResult(ok=False, loss=1.0, reason="no reply", sent=1), 3.0, s)  # sent at t=2
    before = Sample(int(WALL + 1), 100, 0, WALL + 5, "192.0.2.2", ENDPOINT)  # completed at WALL + 1
    kept, _ = step(state, before, 5.0, s)
    assert kept.probe_failures == 1 and kept.status is Status.UP
    after = Sample(int(WALL + 4), 100, 0, WALL + 5, "192.0.2.2", ENDPOINT)  # completed after it
    ended, _ = step(state, after, 5.0, s)
    assert ended.probe_failures == 0


@given(st.lists(observations, max_size=40), st.sampled_from([PROBES, NO_PROBES]), st.floats(0.1, 900))
def test_a_steady_reply_takes_a_short_way_to_what_the_full_step_gives(
        seq: list[tuple[object, ...]], settings: TrackSettings, rtt: float) -> None:
    """``_on_probe``'s short way for a reply of a healthy link equals the full step, from every
    state a sequence of observations reaches."""
    state, wall, now, short = LinkState(), WALL, 0.0, 0
    reply = ProbeResult(ok=True, rtt_ms=rtt, loss=0.0, sent=1, rtts=(rtt,))
    for obs in [*seq, ("p", True), ("p", True)]:
        now += 1
        wall += 1
        if machine.steady_answer(state, reply):
            short += 1
            assert step(state, reply, now, settings) == machine.on_probe_in_full(state, reply, now, settings)
        if obs[0] == "s":
            _, age, rx, ka, target = obs
            hs = 0 if age is None else int(wall - float(age))  # type: ignore[arg-type]
            state, _ = step(state, Sample(hs, int(rx), int(ka), wall, target, ENDPOINT), now, settings)  # type: ignore[arg-type,call-overload]
        elif obs[0] == "h":
            state, _ = step(state, Seen(int(wall - float(obs[1])), ENDPOINT, wall), now, settings)  # type: ignore[arg-type]
        elif obs[0] == "t":
            state, _ = step(state, Tick(wall), now, settings)
        else:
            state, _ = step(state, reply if obs[1] else FAIL, now, settings)


def test_the_short_way_is_taken_by_a_healthy_probed_link() -> None:
    state, _ = run(PROBES, sample(5, 10))
    state, _ = step(state, OK, 1.0, PROBES)
    assert state.target is Target.ANSWERS and state.status is Status.UP
    assert machine.steady_answer(state, ProbeResult(ok=True, rtt_ms=2.0))
    assert not machine.steady_answer(state, FAIL)
