"""Whole cycles in-process, with hand-written fakes for what the daemon talks to (``World``):
detection by probes, re-resolution in the background, the endpoint applied with ``wg set``,
and healing, all in one event loop with no process, namespace or network, in simulated time
(``tests.simtime``: a minute of the daemon's life takes milliseconds, and no timing is left
to the machine's load). Only the daemon's public face is used."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests import lp, simtime
from tests.simtime import SimClock
from wgtrack import config, link
from wgtrack.daemon import Daemon, World
from wgtrack.wgcmd import WgResult

IFACE = "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="
PEER = "5FddUppPDYDCR4pxzC7jW5WF8dW8MjGXuiMKPrLgRAM="


class FakeWg:
    """A WireGuard interface with one peer; ``wg set ... endpoint`` moves it."""

    def __init__(self, clock: SimClock) -> None:
        self.endpoint = "198.51.100.9:51820"
        self.sets: list[list[str]] = []
        self.clock = clock

    async def read(self, command: str, timeout_s: float) -> WgResult:
        hs = int(self.clock.wall()) - 5
        return WgResult(f"wg0\tpriv\t{IFACE}\t51820\toff\n"
                        f"wg0\t{PEER}\t(none)\t{self.endpoint}\t192.0.2.2/32\t{hs}\t100\t100\toff\n", None)

    async def run(self, command: str, args: list[str], timeout_s: float) -> WgResult:
        self.sets.append(args)
        self.endpoint = args[-1]
        return WgResult("", None)


class FakeNetwork:
    """Probes are answered while the peer is reachable at ``reachable_at``."""

    def __init__(self, wg: FakeWg) -> None:
        self.wg, self.reachable_at = wg, "198.51.100.9:51820"
        self.probes = 0

    async def probe(self, target: str, count: int, timeout_s: float, urgent: bool = True) -> link.ProbeResult:
        self.probes += 1
        if self.wg.endpoint == self.reachable_at:
            return link.ProbeResult(ok=True, rtt_ms=1.0, loss=0.0)
        return link.ProbeResult(ok=False, loss=1.0, reason="no reply")


class FakeResolver:
    def __init__(self, hosts_file: Path, timeout_s: float) -> None:
        self.asked: list[str] = []

    async def resolve(self, hostname: str) -> link.ResolveResult:
        self.asked.append(hostname)
        return link.ResolveResult(("198.51.100.20",))


def run_daemon(daemon: Daemon, scenario: Callable[[], Awaitable[None]]) -> int:
    """Run the daemon in-process, in its World's simulated time, while ``scenario`` runs; then
    stop it. Its exit status."""
    clock = daemon.world.clock
    assert isinstance(clock, SimClock)

    async def main() -> int:
        run = asyncio.create_task(daemon.run())
        try:
            await scenario()
        finally:
            daemon.request_stop("test")
        return await run

    return simtime.run(main(), clock)


async def until(condition: Callable[[], bool], tries: int, pause_s: float) -> None:
    """Wait until ``condition`` holds, looking at most ``tries`` times (bounded)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(pause_s)


def _config(tmp_path: Path, general: str) -> config.Config:
    """The peer reached by name (peer.test), the Telegraf file in ``tmp_path``."""
    return config.parse(f"[general]\n{general}wg_config_dir = {tmp_path}\n[output:influx]\n"
                        f"filename = {tmp_path / 'wgtrack.lp'}\n[peer:{PEER}]\nendpoint = peer.test:51820\n",
                        "test.conf")


def test_a_moved_peer_is_detected_resolved_set_and_healed_in_process(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "wgtrack.lp"
    cfg = _config(tmp_path, "cycle_time = 0.2\nping_interval = 1\nping_timeout = 0.05\ncycles_wait = 0\n")
    clock = SimClock()
    wg = FakeWg(clock)
    net = FakeNetwork(wg)
    resolvers: list[FakeResolver] = []

    def resolver(hosts: Path, timeout_s: float) -> FakeResolver:
        resolvers.append(FakeResolver(hosts, timeout_s))
        return resolvers[-1]

    daemon = Daemon(cfg, world=World(read_wg=wg.read, run_wg=wg.run, probe=net.probe, resolver=resolver,
                                     send_handshake_packet=lambda target: None, clock=clock))

    def status() -> str | None:
        text = out.read_text() if out.exists() else ""
        point = lp.peers(text).get(PEER) if text else None
        return None if point is None else str(point.fields["status"])

    async def scenario() -> None:
        await until(lambda: status() == "up:ok", 100, 0.1)  # bounded: 10 s
        assert status() == "up:ok"
        net.reachable_at = "198.51.100.20:51820"  # the peer moved; DNS already says so
        await until(lambda: wg.endpoint == "198.51.100.20:51820" and status() == "up:ok", 100, 0.05)
        assert status() == "up:ok"

    assert run_daemon(daemon, scenario) == 0
    assert wg.sets == [["set", "wg0", "peer", PEER, "endpoint", "198.51.100.20:51820"]]
    assert resolvers[-1].asked and set(resolvers[-1].asked) == {"peer.test"}
    # Down, re-resolved and healed within one cycle: the cycle waits briefly for the resolution.
    log = caplog.text
    assert "up:ok -> down" in log and "probes failed" in log
    assert "endpoint 198.51.100.9:51820 -> 198.51.100.20:51820" in log
    assert log.index("up:ok -> down") < log.index("-> up:ok (probe answered)")


class SlowFailingNetwork(FakeNetwork):
    """A failed probe takes its whole timeout, as a real one does: the fast lane's probe of a
    down peer is nearly always in flight when a cycle comes."""

    async def probe(self, target: str, count: int, timeout_s: float, urgent: bool = True) -> link.ProbeResult:
        result = await super().probe(target, count, timeout_s, urgent)
        if not result.ok:
            await asyncio.sleep(timeout_s)
        return result


def test_a_cycle_re_resolves_while_the_fast_lane_probes(tmp_path: Path) -> None:
    """The cycle's re-resolution of a down peer is carried out even when a fast-lane probe of
    that peer is in flight (it was dropped with the probe once, and the machine, waiting for
    its result, never re-resolved again: seen by bench/run.py with the shipped config)."""
    cfg = _config(tmp_path, "cycle_time = 1\nping_interval = 1\nping_timeout = 0.9\ndown_probe_interval = 1\n")
    clock = SimClock()
    wg = FakeWg(clock)
    net = SlowFailingNetwork(wg)
    daemon = Daemon(cfg, world=World(read_wg=wg.read, run_wg=wg.run, probe=net.probe, resolver=FakeResolver,
                                     send_handshake_packet=lambda target: None, clock=clock))

    async def scenario() -> None:
        await until(lambda: daemon.tracker.is_up(("wg0", PEER)), 100, 0.1)  # bounded: 10 s
        net.reachable_at = "198.51.100.20:51820"  # the peer moved; DNS already says so
        await until(lambda: wg.endpoint == "198.51.100.20:51820", 300, 0.05)  # bounded: 15 s

    assert run_daemon(daemon, scenario) == 0
    assert wg.sets == [["set", "wg0", "peer", PEER, "endpoint", "198.51.100.20:51820"]]


class HubWg:
    """A hub of ``count`` peers that never handshaked, each with an endpoint (so each is probed)."""

    def __init__(self, count: int) -> None:
        self.lines = [f"wg0\tpriv\t{IFACE}\t51820\toff"] + [
            f"wg0\t{base64.b64encode(bytes([i]) * 32).decode()}\t(none)\t198.51.100.{i % 200 + 1}:51820\t"
            f"192.0.2.{i % 250 + 1}/32\t0\t0\t0\toff" for i in range(1, count + 1)]

    async def read(self, command: str, timeout_s: float) -> WgResult:
        return WgResult("\n".join(self.lines) + "\n", None)

    async def run(self, command: str, args: list[str], timeout_s: float) -> WgResult:
        return WgResult("", None)


def test_waiting_probes_of_never_up_peers_are_queue_entries_not_tasks(tmp_path: Path) -> None:
    """Probes of links that are not urgent (here: never up) wait in the daemon's slow queue as
    entries; only a bounded number run at once (the prober's slow rate times a probe's
    duration), each peer is probed, and the event loop never holds a task per waiting probe."""
    peers = 60
    cfg = config.parse(f"[general]\ncycle_time = 1\nping_interval = 30\nping_timeout = 0.2\nprobe_rate = 100\n"
                       f"wg_config_dir = {tmp_path}\n[output:influx]\nfilename = {tmp_path / 'wgtrack.lp'}\n",
                       "test.conf")
    wg = HubWg(peers)
    clock = SimClock()
    running, most, probed, tasks_seen = 0, 0, list[str](), list[int]()

    async def probe(target: str, count: int, timeout_s: float, urgent: bool = True) -> link.ProbeResult:
        nonlocal running, most
        assert not urgent, "a never-up link's probe is not urgent"
        running += 1
        most = max(most, running)
        tasks_seen.append(len(asyncio.all_tasks()))
        try:
            await asyncio.sleep(0.02)
            probed.append(target)
            return link.ProbeResult(ok=False, loss=1.0, reason="no reply")
        finally:
            running -= 1

    daemon = Daemon(cfg, world=World(read_wg=wg.read, run_wg=wg.run, probe=probe, resolver=FakeResolver,
                                     send_handshake_packet=lambda target: None, clock=clock))

    async def scenario() -> None:
        await until(lambda: len(probed) >= peers, 200, 0.05)  # bounded: 10 s

    assert run_daemon(daemon, scenario) == 0
    assert sorted(probed) == sorted({f"192.0.2.{i % 250 + 1}" for i in range(1, peers + 1)})  # each once
    assert max(tasks_seen) < 20, f"tasks on the loop: {max(tasks_seen)} (a task per waiting probe?)"
    assert most <= 2, f"{most} probes at once"  # probe_rate 100: the slow kind gets 1 a second,
    assert daemon.lanes.slow_in_flight_cap() == 2  # a probe takes up to 1.4 s: two at once keep that pace
