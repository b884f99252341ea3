"""The transition table is the spec: the machine takes every entry of it and no other, a
sample's reading is compared field by field, and the pure core imports nothing of the daemon."""

from __future__ import annotations

import ast
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wgtrack import link
from wgtrack.link import LinkSettings, Sample, Status, Verdict, table
from wgtrack.link.messages import same_reading

# Settings a walk switches between, as reloads do: short and long schedules, no probes, the
# fast lane off, a schedule that starts backing off at once, probes on their own clock.
POOL = (
    LinkSettings(ping_interval=1, ping_failafternum=2, cycles_wait=1, cycles_checking=2, cycles_checkperiod=1,
                 cycles_slowcheckingperiod=4),
    LinkSettings(ping_interval=0),
    LinkSettings(),
    LinkSettings(cycles_wait=0, cycles_checking=0, cycles_slowcheckingperiod=2, down_probe_interval_s=0),
    LinkSettings(cycles_wait=0, cycles_checking=0, cycles_checkperiod=1),
    LinkSettings(ping_interval=2, cycles_wait=6, cycles_checking=1, cycles_slowcheckingperiod=40, underlay_probe=True),
    LinkSettings(ping_interval=1, ping_failafternum=1, probe_interval_s=2.0),
)
ENDPOINT = "198.51.100.9:51820"


@dataclass
class _Life:
    """One random peer's dump facts, as a walk changes them."""

    keepalive: int
    target: str | None
    host: str | None
    endpoint: str | None
    handshake: int = 0
    rx: int = 0


def _observation(rng: random.Random, wall: float, life: _Life) -> link.Observation:
    k = rng.random()
    if k < 0.45:
        life.handshake = int(wall) if rng.random() < 0.3 else life.handshake
        life.rx += 100 if rng.random() < 0.3 else 0
        return Sample(life.handshake, life.rx, life.keepalive, wall, life.target, life.endpoint, life.host,
                      51820 if life.host else None, None, rng.random())
    if k < 0.7:
        return link.ProbeResult(ok=rng.random() < 0.4)
    if k < 0.8:
        return link.Tick(wall)
    if k < 0.85:
        life.handshake = int(wall) if rng.random() < 0.5 else life.handshake
        return link.Seen(life.handshake, life.endpoint, wall)
    if k < 0.9:
        return link.ResolveResult(("198.51.100.7",))
    if k < 0.93:
        return link.SetEndpointResult("198.51.100.7:51820", rng.random() < 0.7)
    if k < 0.96:
        return link.Measured(rng.choice([0.0, 0.2]), 100, 5.0, rng.choice([None, None, 1200]), 1420)
    return link.UnderlayResult(rng.random() < 0.5)


def walk(seed: int, lives: int, monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[Status | None, Verdict]]:
    """Random peers' lives, reloads (settings, hostname, target, keepalive changing) included:
    every (status, verdict) the machine looked up, counted."""
    used: Counter[tuple[Status | None, Verdict]] = Counter()
    real = table.lookup

    def spy(status: Status | None, verdict: Verdict) -> Status:
        used[(status, verdict)] += 1
        return real(status, verdict)

    monkeypatch.setattr(table, "lookup", spy)
    rng = random.Random(seed)
    for _ in range(lives):
        state, settings, now, wall = link.LinkState(), rng.choice(POOL), 0.0, 1.8e9
        life = _Life(rng.choice([0, 25]), rng.choice([None, "192.0.2.2"]), rng.choice([None, "h.test"]),
                     rng.choice([None, ENDPOINT]))
        for _ in range(rng.randint(1, 60)):
            r = rng.random()
            if r < 0.05:  # a reload
                settings = rng.choice(POOL)
                life.host = rng.choice([None, "h.test"]) if r < 0.03 else life.host
                life.target = rng.choice([None, "192.0.2.2"]) if r < 0.02 else life.target
                life.keepalive = rng.choice([0, 25]) if r < 0.02 else life.keepalive
            gap = rng.choice([0.5, 1, 2, 5, 20, 200])
            now, wall = now + gap, wall + gap
            state, _ = link.step(state, _observation(rng, wall, life), now, settings)
    return used


def test_the_machine_takes_every_entry_of_the_table_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """No entry is dead text (each is reached), and none is missing: a missing one raises
    UndeclaredTransition in the walk. Seeded: the same walk every run."""
    used = walk(seed=1, lives=3000, monkeypatch=monkeypatch)
    assert set(used) == set(link.TRANSITIONS)


def test_a_pair_missing_from_the_table_raises() -> None:
    with pytest.raises(link.UndeclaredTransition):
        link.lookup(Status.DOWN, Verdict.FRESH)  # a young handshake never revokes down
    assert link.lookup(Status.DOWN, Verdict.ALIVE) is Status.UP


def test_a_reload_may_move_a_down_peer_back_in_its_schedule() -> None:
    """cycles_wait raised while a peer is checking: it is waiting again (0.3.0 raised here)."""
    short = LinkSettings(ping_interval=1, ping_failafternum=2, cycles_wait=1, down_probe_interval_s=0)
    sample = Sample(0, 0, 0, 0.0, "192.0.2.2", ENDPOINT, "h.test", 51820)
    state, _ = link.step(link.LinkState(), link.ProbeResult(ok=True), 0.0, short)
    state, _ = link.step(state, sample, 1.0, short)
    for i in range(2):
        state, _ = link.step(state, link.ProbeResult(ok=False), 1.0 + i, short)
    for i in range(2):
        state, _ = link.step(state, sample._replace(wall=10.0 + i), 10.0 + i, short)
    assert state.status is Status.CHECKING
    longer = LinkSettings(ping_interval=1, ping_failafternum=2, cycles_wait=9, down_probe_interval_s=0)
    state, actions = link.step(state, sample._replace(wall=20.0), 20.0, longer)
    assert state.status is Status.WAITING
    assert [a for a in actions if isinstance(a, link.Changed)] == [
        link.Changed(Status.CHECKING, Status.WAITING, "2 probes failed")]


@pytest.mark.parametrize("name", Sample._fields)
def test_a_reading_is_every_field_of_a_sample_but_its_time_and_jitter(name: str) -> None:
    """A field added to Sample takes part in the comparison without anyone remembering to."""
    base = Sample(1, 2, 3, 4.0, "192.0.2.2", ENDPOINT, "h.test", 51820, "192.0.2.3", 0.5)
    values: dict[str, Any] = {"latest_handshake": 9, "rx_bytes": 9, "keepalive_s": 9, "wall": 9.0,
                                 "probe_target": "192.0.2.9", "endpoint": None, "hostname": None, "port": 1,
                                 "handshake_target": None, "rand": 0.9}
    other = base._replace(**{name: values[name]})
    assert same_reading(base, other) is (name in ("wall", "rand"))


PURE = Path(link.__file__).parent
# The pure core may import the standard library, itself, and the dump's plain records.
ALLOWED_WGTRACK = ("wgtrack.link", "wgtrack.model")
FORBIDDEN_STDLIB = ("asyncio", "subprocess", "socket", "threading", "time", "logging", "os")


@pytest.mark.parametrize("path", sorted(PURE.glob("*.py")), ids=lambda p: p.name)
def test_the_pure_core_imports_nothing_of_the_daemon(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # every import, at any depth (no hidden ones in functions)
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            if name.startswith("wgtrack"):
                assert name.startswith(ALLOWED_WGTRACK), f"{path.name} imports {name}"
            assert name.split(".")[0] not in FORBIDDEN_STDLIB, f"{path.name} imports {name}: I/O or a clock"
