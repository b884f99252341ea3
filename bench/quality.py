"""``make bench`` (quality at hub scale): the whole daemon probing K up peers once a second,
their windows and histograms kept, side by side in one run with Debian's ``fping`` sending the
same echo requests to the same targets (the C anchor), and with the floor of this set-up (the
fake ``wg`` alone).

In a network namespace of its own (loopback at MTU 1420, a tunnel's): K targets on loopback
(127.0.x.y: they answer), and a ``wg`` that prints a dump of K peers with those addresses as
allowed IPs, an endpoint each and a handshake (``cat`` of a file: the daemon's children are
counted, so this floor is measured too). wgtrack runs the shipped probing settings
(``probe_interval = 1``) with ``probe_rate`` raised to let K a second through; fping runs
``-l -p 1000`` over the same targets. Each contender alone: a warm-up, then ``--seconds``;
CPU is the process's own plus its reaped children's (% of one core), echo requests a second
are counted by nft in the namespace (the same for both), wgtrack's worst loop lag from its
heartbeat line, RSS at the end. Medians of ``--runs``. Root.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hub import cpu_seconds, heartbeats, rss_mb

REPO = Path(__file__).resolve().parent.parent
PATH = {"PATH": "/usr/sbin:/usr/bin:/bin"}


def targets(count: int) -> list[str]:
    return [f"127.{1 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(count)]


def fake_wg(tmp: Path, addresses: list[str]) -> Path:
    """A ``wg`` whose ``show all dump`` is a file: K peers up, their addresses as allowed IPs."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    now = int(time.time())
    lines = [f"wg0\t(none)\t{key}\t51820\toff"]
    for i, address in enumerate(addresses):
        peer = base64.b64encode(secrets.token_bytes(32)).decode()
        lines.append(f"wg0\t{peer}\t(none)\t198.51.100.{i % 250 + 1}:51820\t{address}/32\t{now}\t1000\t1000\toff")
    dump = tmp / "dump"
    dump.write_text("\n".join(lines) + "\n")
    wg = tmp / "wg"
    wg.write_text(f"#!/bin/sh\nexec cat {dump}\n")
    wg.chmod(0o755)
    return wg


def nft_echoes(ns: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "bench"], capture_output=True,
                         text=True, check=True).stdout
    return int(out.split("counter packets ", 1)[1].split()[0])


def measure(ns: str, argv: list[str], env: dict[str, str], warmup_s: float, seconds: float,
            lp_file: Path | None = None) -> dict[str, float]:
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env)
    try:
        time.sleep(warmup_s)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
        pid = proc.pid  # ip netns exec execs the contender: this is its process
        cpu0, echoes0, lags = cpu_seconds(pid), nft_echoes(ns), []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # bounded: one look a second
            time.sleep(1.0)
            if lp_file is not None:
                lags += [lag for _, lag in heartbeats(lp_file).values()]
        cpu1, echoes1 = cpu_seconds(pid), nft_echoes(ns)
        return {"cpu_pct": (cpu1 - cpu0) * 100 / seconds, "echoes_per_s": (echoes1 - echoes0) / seconds,
                "lag_ms": max(lags, default=float("nan")), "rss_mb": rss_mb(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(count: int, runs: int, warmup: float, seconds: float) -> None:
    ns = f"wgtq{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "mtu", "1420", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], check=True, text=True, input=(
            "table inet bench {\n chain o { type filter hook output priority 0; "
            "icmp type echo-request counter; }\n}\n"))
        with tempfile.TemporaryDirectory(prefix="wgtrack-bench-quality-") as tmpdir:
            tmp = Path(tmpdir)
            addresses = targets(count)
            wg = fake_wg(tmp, addresses)
            (tmp / "targets").write_text("\n".join(addresses) + "\n")
            lp_file = tmp / "out.lp"
            conf = tmp / "wgtrack.conf"
            conf.write_text(f"[general]\ncycle_time = 5\nping_interval = 1\nprobe_interval = 1\n"
                            f"probe_rate = {count * 2}\nwg_command = {wg}\nwg_config_dir = {tmp}\nloglevel = 30\n"
                            f"[output:influx]\nfilename = {lp_file}\n"
                            # its own store: a shared one would carry every earlier run's peers
                            f"[history]\npath = {tmp / 'history.db'}\n")
            # fping: every target once a second (-p), its sends spread evenly (-i: 1,000 ms / K)
            interval = max(0.01, 1000 / count / 1.2)
            contenders = {
                f"fping -l -p 1000 -i {interval:.3f} (C)": (["fping", "-l", "-q", "-p", "1000", "-i", f"{interval:.3f}",
                                                             "-t", "1000", "-f", str(tmp / "targets")], PATH, None),
                "fake wg alone, every 5 s (the floor)": (["sh", "-c", f"while :; do {wg} >/dev/null; sleep 5; done"],
                                                         PATH, None),
                "wgtrack (this tree)": ([sys.executable, "-m", "wgtrack", "-c", str(conf)],
                                        {**PATH, "PYTHONPATH": str(REPO)}, lp_file),
            }
            results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
            for _ in range(runs):
                for name, (argv, env, lp) in contenders.items():
                    if lp is not None:
                        lp.unlink(missing_ok=True)
                    results[name].append(measure(ns, argv, env, warmup, seconds, lp))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    print(f"\n{count:,} up peers probed once a second (medians of {runs} runs of {seconds:g} s):")
    print(f"{'contender':46} {'% of a core':>12} {'echoes/s':>10} {'worst lag ms':>13} {'RSS MB':>8}")
    medians = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    for name, m in medians.items():
        print(f"{name:46} {m['cpu_pct']:12.1f} {m['echoes_per_s']:10.0f} {m['lag_ms']:13.1f} {m['rss_mb']:8.1f}")
    ours, anchor = medians["wgtrack (this tree)"], next(m for n, m in medians.items() if n.startswith("fping"))
    print(f"wgtrack / fping CPU: {ours['cpu_pct'] / anchor['cpu_pct']:.2f}x (target <= 3x); "
          f"wgtrack {ours['cpu_pct']:.1f} % of a core (target <= 25 %), worst loop lag {ours['lag_ms']:.0f} ms "
          f"(target <= 50 ms)")
    # fping's own pacing falls short of K a second: per echo request is the like-for-like ratio
    per_echo = {name: m["cpu_pct"] * 10_000 / m["echoes_per_s"] for name, m in (("wgtrack", ours), ("fping", anchor))
                if m["echoes_per_s"] > 0}
    if len(per_echo) == 2:
        print(f"CPU per echo request: wgtrack {per_echo['wgtrack']:.0f} µs, fping {per_echo['fping']:.0f} µs: "
              f"{per_echo['wgtrack'] / per_echo['fping']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench.quality needs root (network namespaces)", file=sys.stderr)
        return 2
    run(args.peers, args.runs, args.warmup, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
