"""up:ok or up:degraded (docs/link-state.md, "Degraded"): the pure machine told the measured
quality of an up link every 15 s, as the tracker tells it. Loss and latency enter after two
minutes past their threshold and leave after five within it; a path-MTU verdict enters at once;
a measure that hovers about its threshold never makes the link flap."""

from __future__ import annotations

import random

from wgtrack.link import Changed, LinkSettings, LinkState, Measured, ProbeResult, Sample, Status, step
from wgtrack.link.health import past_threshold
from wgtrack.link.settings import DEGRADE_ENTER_S, DEGRADE_LEAVE_S

SETTINGS = LinkSettings()
WALL = 1_800_000_000.0
ENDPOINT = "198.51.100.9:51820"
EVERY_S = 15.0  # quality.REFRESH_S: how often a window's figures are made again
LOSSY = Measured(loss=0.15, echoes=300, rtt_ms=1.0)
CLEAN = Measured(loss=0.0, echoes=300, rtt_ms=1.0)


def up() -> LinkState:
    state, _ = step(LinkState(), ProbeResult(ok=True, rtt_ms=1.0), 0.0, SETTINGS)
    assert state.status is Status.UP
    return state


def feed(state: LinkState, measures: list[Measured], start: float,
         settings: LinkSettings = SETTINGS) -> tuple[LinkState, list[tuple[float, Changed]]]:
    changes = []
    for i, m in enumerate(measures):
        now = start + i * EVERY_S
        state, actions = step(state, m, now, settings)
        changes += [(now, a) for a in actions if isinstance(a, Changed)]
    return state, changes


def test_loss_past_the_threshold_for_two_minutes_degrades_and_says_why() -> None:
    state, changes = feed(up(), [LOSSY] * 12, 10.0)
    assert [(c.old, c.new, c.event) for _, c in changes] == [(Status.UP, Status.DEGRADED, "peer_degraded")]
    when, change = changes[0]
    assert when - 10.0 >= DEGRADE_ENTER_S  # not before the entry time
    assert when - 10.0 <= DEGRADE_ENTER_S + EVERY_S
    assert dict(change.details) == {"cause": "loss", "loss": 0.15, "echoes": 300}
    assert change.reason.startswith("loss 15.0% over 5 min")
    assert state.degraded == "loss" and state.status is Status.DEGRADED and state.status.is_up


def test_recovery_takes_five_minutes_within_every_threshold() -> None:
    state, _ = feed(up(), [LOSSY] * 10, 10.0)
    assert state.status is Status.DEGRADED
    start = 10.0 + 10 * EVERY_S
    state, changes = feed(state, [CLEAN] * 22, start)
    assert [(c.new, c.event) for _, c in changes] == [(Status.UP, "peer_recovered")]
    assert changes[0][0] - start >= DEGRADE_LEAVE_S
    assert state.degraded is None and state.health_since is None


def test_one_bad_reading_starts_the_recovery_over() -> None:
    state, _ = feed(up(), [LOSSY] * 10, 10.0)
    state, changes = feed(state, [CLEAN] * 15 + [LOSSY] + [CLEAN] * 15, 1000.0)
    assert changes == []  # 15 clean readings are 210 s, the lossy one restarts the count
    assert state.status is Status.DEGRADED


def test_a_measure_hovering_about_its_threshold_never_flaps() -> None:
    """A day of readings of a link with 5 % loss on average, each reading past the threshold or
    not at random: entering needs eight in a row past it, leaving twenty within."""
    rng = random.Random(7)
    readings = [Measured(loss=rng.choice([0.04, 0.06]), echoes=300) for _ in range(int(86400 / EVERY_S))]
    _, changes = feed(up(), readings, 10.0)
    # 2**-8 a reading to enter, then 2**-20 to leave: entered once, never left within a day
    assert [c.event for _, c in changes] in ([], ["peer_degraded"])


def test_a_path_mtu_below_the_tunnels_degrades_at_once_and_names_the_size() -> None:
    state, changes = feed(up(), [Measured(loss=0.0, echoes=300, path_mtu=1144, mtu=1420)], 10.0)
    assert [(c.new, c.event) for _, c in changes] == [(Status.DEGRADED, "peer_degraded")]
    change = changes[0][1]
    assert dict(change.details) == {"cause": "mtu", "path_mtu": 1144, "mtu": 1420}
    assert "set MTU = 1144 on both ends" in change.reason
    assert state.degraded == "mtu"


def test_the_cause_follows_the_measures_while_degraded() -> None:
    state, _ = feed(up(), [Measured(loss=0.2, echoes=300, path_mtu=1144, mtu=1420)], 10.0)
    assert state.degraded == "mtu"
    state, changes = feed(state, [LOSSY], 30.0)
    assert changes == [] and state.degraded == "loss"


def test_too_few_echoes_say_nothing_of_loss() -> None:
    state, changes = feed(up(), [Measured(loss=0.5, echoes=4)] * 20, 10.0)
    assert changes == [] and state.status is Status.UP


def test_latency_is_off_by_default_and_a_threshold_when_set() -> None:
    slow = Measured(loss=0.0, echoes=300, rtt_ms=250.0)
    _, changes = feed(up(), [slow] * 12, 10.0)
    assert changes == []
    strict = LinkSettings(degraded_rtt_ms=200.0)
    state, changes = feed(up(), [slow] * 12, 10.0, strict)
    assert [c.event for _, c in changes] == ["peer_degraded"] and state.degraded == "latency"
    assert past_threshold(slow, LinkSettings(degraded_loss=0.0, degraded_rtt_ms=300.0))[0] is None


def test_life_does_not_cure_a_degraded_link_and_death_forgets_it() -> None:
    state, _ = feed(up(), [LOSSY] * 10, 10.0)
    state, actions = step(state, ProbeResult(ok=True, rtt_ms=1.0), 200.0, SETTINGS)
    assert state.status is Status.DEGRADED and actions == []
    for i in range(2):
        state, actions = step(state, ProbeResult(ok=False, reason="no reply", sent=9), 201.0 + i, SETTINGS)
    assert state.status is not None and state.status.is_down
    assert [a.event for a in actions if isinstance(a, Changed)] == ["peer_down"]
    assert state.degraded is None
    state, actions = step(state, ProbeResult(ok=True, rtt_ms=1.0), 210.0, SETTINGS)
    assert state.status is Status.UP
    assert [a.event for a in actions if isinstance(a, Changed)] == ["peer_up"]


def test_a_down_or_idle_link_is_not_measured() -> None:
    state, changes = feed(LinkState(), [LOSSY] * 20, 10.0)
    assert changes == [] and state.status is None and state.health_since is None


def test_a_silent_target_loses_every_echo_and_that_is_no_loss_of_the_link() -> None:
    """The lab's peer-a: its target never answers, handshakes keep it up; its window reads
    100 % loss, which says nothing of the link."""
    state, _ = step(LinkState(), Sample(int(WALL) - 1, 100, 25, WALL, "192.0.2.2", ENDPOINT), 0.0, SETTINGS)
    for i in range(2):
        state, _ = step(state, ProbeResult(ok=False, sent=1), 1.0 + i, SETTINGS)
    assert state.status is Status.UP and state.probe_silent
    state, changes = feed(state, [Measured(loss=1.0, echoes=300)] * 30, 10.0)
    assert changes == [] and state.status is Status.UP
