"""``make bench`` (the status page at a big hub, issue 23): the running daemon tracking 50,000
peers (a real wireguard-go interface, ``wg addconf``), its history store on, the exporter's
status page fetched over HTTP from inside the namespace: the first page of the table, a page
deep in it, and a peer's own page (its past read from the store). Medians and worst of
``--runs`` fetches each, after the first cycles; target: every page within 200 ms."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.parse

from bench.hub import PATH, add_peers, config, spawn
from tests import lp
from tests.lab import REPO, Lab

PORT = 9586
TARGET_S = 0.200
FETCH = """
import sys, time, urllib.request
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    with urllib.request.urlopen("http://127.0.0.1:%d" % PORT + sys.argv[1], timeout=10) as r:
        size = len(r.read())
    times.append(time.perf_counter() - t)
print(" ".join("%.4f" % x for x in times), size)
""".replace("PORT", str(PORT))


def fetch(lab: Lab, path: str, runs: int) -> tuple[list[float], int]:
    out = subprocess.run(["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-n", sys.executable, "-c", FETCH, path,
                          str(runs)], capture_output=True, text=True, timeout=600, check=True).stdout.split()
    return [float(x) for x in out[:-1]], int(out[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    lab = Lab(peers=())
    try:
        lab.build()
        add_peers(lab, args.peers)
        conf = config(lab.dir, "pages", f"[output:prometheus]\nlisten = 127.0.0.1:{PORT}\n", cycle_s=5.0)
        proc = spawn(lab, [sys.executable, "-m", "wgtrack", "-c", str(conf)], {**PATH, "PYTHONPATH": str(REPO)})
        out = lab.dir / "pages.lp"
        for _ in range(600):  # bounded: the first cycles of a big hub, 5 minutes at most
            text = out.read_text() if out.exists() else ""
            if text and int(str(lp.tracker(text).fields["cycle"])) >= 3:
                break
            if proc.poll() is not None:
                raise RuntimeError("the daemon exited")
            time.sleep(0.5)
        key = next(iter(lp.peers(out.read_text())))
        pages = {"table, page 1": "/", "table, page 50": "/?page=50",
                 "a peer's own page": f"/peer/wg0/{urllib.parse.quote(key, safe='')}"}
        print(f"\nstatus page, {args.peers:,} peers, history on, {args.runs} fetches each "
              f"(target: every one <= {TARGET_S * 1000:.0f} ms)\n")
        print("| page | median | worst | size |\n|---|---|---|---|")
        for name, path in pages.items():
            times, size = fetch(lab, path, args.runs)
            print(f"| {name} | {statistics.median(times) * 1000:.0f} ms | {max(times) * 1000:.0f} ms | "
                  f"{size / 1000:.0f} kB |", flush=True)
        lab._stop(proc)
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
