"""``make bench`` (the hub part): the whole running daemon on a K-peer hub, side by side in one
run with wgtrack 0.2.0 (from PyPI, in a venv made here) and with ``wg show all dump`` alone
(the floor).

Set-up, as in the scale issue: one real wireguard-go interface in a lab namespace; K peers
added with ``wg addconf`` (random keys, one /128 allowed IP each, no endpoints, never
handshaked); 0.2.0's own config (``cycle_time = 2``, ``ping_interval = 2``). Each contender
runs alone for a warm-up and then ``--seconds``; CPU is the process's own plus its reaped
children's (``/proc/<pid>/stat`` utime, stime, cutime, cstime), per cycle; RSS is VmRSS at
the end. Medians of ``--runs``; ratios against the floor and against 0.2.0. Root, Debian 12.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.run import ensure_020
from tests.lab import REPO, Lab

CYCLE_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def add_peers(lab: Lab, count: int) -> None:
    lines = []
    for i in range(count):
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        lines += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = fd00:1::{i + 1:x}/128", ""]
    conf = lab.dir / "hub-peers.conf"
    conf.write_text("\n".join(lines))
    lab.wg("mon", "addconf", "wg0", str(conf), timeout=120)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(lab: Lab, argv: list[str], env: dict[str, str], warmup_s: float, seconds: float) -> tuple[float, float]:
    """(CPU ms per cycle, RSS MB) of ``argv`` run in mon's namespaces."""
    proc = subprocess.Popen(["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-m", "-n", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    lab.procs.append(proc)
    try:
        time.sleep(warmup_s)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}")
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        after = cpu_seconds(proc.pid)
        rss = rss_mb(proc.pid)
    finally:
        lab._stop(proc)
    return (after - before) * 1000 / (seconds / CYCLE_S), rss


def contenders(tmp: Path, python_020: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    conf = tmp / "wgtrack.conf"
    conf.write_text(f"[general]\ncycle_time = {CYCLE_S:g}\nping_interval = 2\nloglevel = 30\n"
                    f"[output:influx]\nfilename = {tmp / 'out.lp'}\n")
    path = {"PATH": "/usr/sbin:/usr/bin:/bin"}
    return {
        "wg show all dump alone": (["sh", "-c", f"while :; do wg show all dump >/dev/null; sleep {CYCLE_S:g}; done"],
                                   path),
        "wgtrack 0.2.0": ([python_020, "-m", "wgtrack", "-c", str(conf)], path),
        "wgtrack (this tree)": ([sys.executable, "-m", "wgtrack", "-c", str(conf)], {**path, "PYTHONPATH": str(REPO)}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default="1000,5000", help="hub sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per contender and run")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python_020 = ensure_020()
    rows = []
    for count in (int(x) for x in args.peers.split(",")):
        lab = Lab(peers=())
        try:
            lab.build()
            add_peers(lab, count)
            figures: dict[str, list[tuple[float, float]]] = {}
            for _ in range(args.runs):
                for name, (argv, env) in contenders(lab.dir, python_020).items():
                    figures.setdefault(name, []).append(measure(lab, argv, env, args.warmup, args.seconds))
        finally:
            lab.close()
        cpu = {n: statistics.median(c for c, _ in f) for n, f in figures.items()}
        rss = {n: statistics.median(r for _, r in f) for n, f in figures.items()}
        floor, old = cpu["wg show all dump alone"], cpu["wgtrack 0.2.0"]
        for name in figures:
            rows.append(f"| {count:,} | {name} | {cpu[name]:.1f} ms | {cpu[name] / floor:.2f}× | "
                        f"{cpu[name] / old:.2f}× | {rss[name]:.1f} MB |")
    print(f"\nCPU per cycle (own + children), cycle {CYCLE_S:g} s, medians of {args.runs} run(s) of "
          f"{args.seconds:g} s each\n")
    print("| peers | contender | CPU/cycle | vs floor | vs 0.2.0 | RSS |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
