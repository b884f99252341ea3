"""``make bench`` (part 2): the cost of one cycle and one scrape with 10,000 peers, against the
``wg show all dump`` floor, and the daemon's memory with and without the Prometheus exporter.

A real wireguard-go interface in a lab namespace gets 10,000 peers (``wg addconf``); every
figure is a median over repeated runs on that real dump.
"""

from __future__ import annotations

import base64
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from tests.lab import Lab, wait_until
from tests.promoracle import SnapshotCollector
from wgtrack.config import Config, TrackSettings
from wgtrack.dump import parse_dump
from wgtrack.lineproto import render
from wgtrack.promtext import LabelCache, render_chunks
from wgtrack.snapshot import CycleFacts
from wgtrack.tracker import Tracker

PEERS = 10_000
RUNS = 11
TARGET_SCRAPE_S = 0.100
TARGET_MEMORY_MB = 5.0


def median_time(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def add_peers(lab: Lab, count: int) -> None:
    lines = []
    for i in range(count):
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        lines += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32",
                  f"Endpoint = 198.51.100.{2 + i % 200}:{20000 + i}", ""]
    conf = lab.dir / "peers.conf"
    conf.write_text("\n".join(lines))
    lab.wg("mon", "addconf", "wg0", str(conf), timeout=120)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def daemon_pid(started: int) -> int:
    """The python process: ``started`` itself when nsenter exec'd it, else its child."""
    for pid in [started, *map(int, subprocess.run(["pgrep", "-P", str(started)], capture_output=True,
                                                  text=True).stdout.split())]:
        if "python" in Path(f"/proc/{pid}/exe").resolve().name:
            return pid
    raise RuntimeError(f"no python process under {started}")


def daemon_rss(lab: Lab, exporter: bool) -> float:
    out = lab.dir / f"out-{exporter}.lp"
    conf = lab.dir / f"mem-{exporter}.conf"
    text = f"[general]\ncycle_time = 1\nping_interval = 0\n[output:influx]\nfilename = {out}\n"
    if exporter:
        text += "[output:prometheus]\nlisten = 127.0.0.1:9586\n"
    conf.write_text(text)
    proc = lab.daemon(conf)
    try:
        wait_until("five cycles", lambda: out.exists() and "cycle=5i" in out.read_text()[-400:], 120, interval=0.5)
        if exporter:  # a scrape allocates too: measure after one
            lab.http_get("mon", "http://127.0.0.1:9586/metrics", timeout=60)
        return rss_mb(daemon_pid(proc.pid))
    finally:
        lab._stop(proc)


def main() -> int:
    lab = Lab(peers=())
    try:
        lab.build()
        add_peers(lab, PEERS)
        dump_text = lab.wg("mon", "show", "all", "dump", timeout=60)
        floor = median_time(lambda: lab.wg("mon", "show", "all", "dump", timeout=60))
        parse = median_time(lambda: parse_dump(dump_text))
        dump = parse_dump(dump_text)
        assert sum(len(i.peers) for i in dump.interfaces) == PEERS
        config = Config(track=TrackSettings(ping_interval=0))
        tracker = Tracker(config)

        def cycle_core() -> None:
            tracker.observe_dump(dump, time.monotonic(), time.time())

        step = median_time(cycle_core)
        snap = tracker.snapshot(time.monotonic(), CycleFacts(time_ns=time.time_ns(), cycle=1, wg_error=None,
                                                             cycle_duration_s=0.0, started_ns=time.time_ns()))
        influx = median_time(lambda: render(snap))
        cache = LabelCache()
        first_scrape = median_time(lambda: sum(len(c) for c in render_chunks(snap, LabelCache())), 3)
        scrape = median_time(lambda: sum(len(c) for c in render_chunks(snap, cache)))
        collector = SnapshotCollector()
        collector.snapshot = snap
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        library = median_time(lambda: generate_latest(registry), 3)
        without = daemon_rss(lab, exporter=False)
        with_exporter = daemon_rss(lab, exporter=True)
    finally:
        lab.close()

    print(f"\n{PEERS} peers on one real wireguard-go interface; medians of {RUNS} runs")
    print(f"{'step':<44} {'median':>10} {'x wg floor':>11}")
    for label, value in [("wg show all dump (the floor, a subprocess)", floor), ("parse the dump", parse),
                         ("step 10,000 link machines", step), ("render the Telegraf file", influx),
                         ("scrape, first (label cache empty)", first_scrape),
                         ("scrape, steady state (wgtrack's renderer)", scrape),
                         ("scrape with prometheus_client (3 runs)", library)]:
        print(f"{label:<44} {value * 1000:>8.1f} ms {value / floor:>10.2f}")
    print(f"scrape: {scrape * 1000:.1f} ms against a target of {TARGET_SCRAPE_S * 1000:.0f} ms "
          f"(ratio {scrape / TARGET_SCRAPE_S:.2f}); prometheus_client takes {library / scrape:.0f}x as long")
    delta = with_exporter - without
    print(f"daemon RSS after 5 cycles: {without:.1f} MB without the exporter, {with_exporter:.1f} MB with it "
          f"and one scrape: +{delta:.1f} MB (target <= {TARGET_MEMORY_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
