"""``make bench`` (probes): why wgtrack dropped icmplib. The same probes, in one run, through
icmplib 3's ``async_ping`` (a socket per probe), icmplib's blocking ``ping`` in worker threads
(Debian 12's icmplib 2.1 has no asyncio API: that was the .deb's path) and wgtrack's prober
(one socket per family). icmplib comes from PyPI into a venv made here.

In a network namespace of its own: ``--probes`` probes at once, half to loopback addresses
(they answer), half into a veth whose far end has no address (nothing answers: 1 s timeout).
CPU (process time, all threads) and wall time, medians of ``--runs``. Root. The prober paces
at 5,000 a second here (icmplib does not pace): its wall time includes that.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
from pathlib import Path

from bench.run import ensure_venv

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "bench" / ".venv-icmplib"

_SCRIPT = r"""
import asyncio, concurrent.futures, json, random, sys, time
import icmplib
from wgtrack.probe import Prober

N = int(sys.argv[1])
TARGETS = [f"127.0.{i // 250}.{i % 250 + 1}" if i % 2 == 0 else f"192.0.2.{i % 250 + 1}" for i in range(N)]

async def with_prober():
    p = Prober(rate=5_000)  # paced (the daemon's default is 1,000/s): an unpaced burst of 2,000
    # loopback echoes overflows the kernel's backlog (net.core.netdev_max_backlog) whoever sends
    results = await asyncio.gather(*(p.ping(t, 1, 1.0) for t in TARGETS))
    p.close()
    return sum(r.ok for r in results)

async def with_async_icmplib():
    results = await asyncio.gather(*(icmplib.async_ping(t, count=1, timeout=1.0, privileged=True) for t in TARGETS))
    return sum(h.is_alive for h in results)

async def with_threads():
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(64)  # the old .deb path: 64 probe threads
    calls = [loop.run_in_executor(pool, lambda t=t: icmplib.ping(t, count=1, timeout=1.0, id=random.randint(1, 0xFFFF),
                                                                   privileged=True)) for t in TARGETS]
    results = await asyncio.gather(*calls)
    pool.shutdown()
    return sum(h.is_alive for h in results)

which = {"prober": with_prober, "icmplib async_ping": with_async_icmplib, "icmplib ping, 64 threads": with_threads}
fn = which[sys.argv[2]]
cpu, wall = time.process_time(), time.monotonic()
alive = asyncio.run(fn())
print(json.dumps({"cpu_ms": (time.process_time() - cpu) * 1000, "wall_s": time.monotonic() - wall, "alive": alive}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probes", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = ensure_venv(VENV, "icmplib==3.0.4")
    ns = f"wgtpb{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=20)
    figures: dict[str, list[dict[str, float]]] = {}
    try:
        for cmd in (["link", "set", "lo", "up"], ["link", "add", "dead0", "type", "veth", "peer", "name", "dead1"],
                    ["link", "set", "dead0", "up"], ["link", "set", "dead1", "up"],
                    ["route", "add", "192.0.2.0/24", "dev", "dead0"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True, timeout=20)
        for _ in range(args.runs):
            for name in ("prober", "icmplib async_ping", "icmplib ping, 64 threads"):
                out = subprocess.run(["ip", "netns", "exec", ns, python, "-c", _SCRIPT, str(args.probes), name],
                                     capture_output=True, text=True, timeout=600,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
                if out.returncode != 0:
                    raise RuntimeError(f"{name}: {out.stderr.strip().splitlines()[-1:]}")
                figures.setdefault(name, []).append(json.loads(out.stdout))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=20)
    print(f"\n{args.probes:,} probes at once (half answer, half time out after 1 s), medians of {args.runs}\n")
    print("| path | CPU | CPU per probe | wall | answered |\n|---|---|---|---|---|")
    for name, runs in figures.items():
        cpu = statistics.median(r["cpu_ms"] for r in runs)
        wall = statistics.median(r["wall_s"] for r in runs)
        alive = statistics.median(r["alive"] for r in runs)
        print(f"| {name} | {cpu:.0f} ms | {cpu * 1000 / args.probes:.0f} µs | {wall:.2f} s | {alive:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
