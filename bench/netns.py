"""``make bench`` (the namespaces part): what reading WireGuard in other network namespaces
costs. The same 1,000 peers, side by side in one run:

- one namespace of 1,000 peers, read through ``netns = <it>`` (wgtrack in the host's own);
- twenty namespaces of 50 peers each, read through ``netns = <all twenty>``;
- one namespace of 1,000 peers with wgtrack inside it (no netns: the reference);
- ``wg show all dump`` run in each of the twenty namespaces, through nsenter: what reading
  them cost when wgtrack ran ``wg`` in each (it now asks userspace WireGuard's sockets itself,
  ``wgtrack/uapi.py``; kernel WireGuard in a namespace is still read this way).

Each namespace has one wireguard-go interface (its UAPI socket in a mount namespace of its
own, as a container's), its peers added with ``wg addconf`` (random keys, one /128 allowed IP
each, no endpoints). CPU per cycle (the process's own and its reaped children's), RSS at the
end, medians of ``--runs``; the target: twenty namespaces of 50 cost at most 2x one of 1,000.

Root, Debian 12.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.hub import cpu_seconds, rss_mb
from tests.lab import REPO, wait_until

CYCLE_S = 2.0
PATH = {"PATH": "/usr/sbin:/usr/bin:/bin"}


class Namespaces:
    """``count`` namespaces of ``peers`` peers each, removed on close (pass or fail)."""

    def __init__(self, tmp: Path, tag: str, count: int, peers: int) -> None:
        self.tmp, self.count, self.peers = tmp, count, peers
        self.prefix = f"wgtb{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}{tag}"
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Namespaces:
        try:
            for i in range(self.count):
                self._one(f"{self.prefix}-{i}", i)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, name: str, index: int) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
        self.names.append(name)
        run_dir = self.tmp / f"run-{name}"
        run_dir.mkdir()
        script = f"mount --bind {run_dir} /var/run/wireguard && exec wireguard-go -f wg0"
        proc = subprocess.Popen(["ip", "netns", "exec", name, "unshare", "-m", "--propagation", "private",
                                 "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "WG_PROCESS_FOREGROUND": "1"})
        self.procs.append(proc)
        wait_until(f"wireguard-go in {name}", lambda: (run_dir / "wg0.sock").exists(), 10)
        key = self.tmp / f"{name}.key"
        key.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        lines = []
        for i in range(self.peers):
            peer = base64.b64encode(secrets.token_bytes(32)).decode()
            lines += ["[Peer]", f"PublicKey = {peer}", f"AllowedIPs = fd00:{index + 1:x}::{i + 1:x}/128", ""]
        conf = self.tmp / f"{name}.conf"
        conf.write_text("\n".join(lines))
        enter = ["nsenter", "-t", str(proc.pid), "--net", "--mount", "--"]
        subprocess.run([*enter, "wg", "set", "wg0", "private-key", str(key), "listen-port", str(51820)], check=True,
                       timeout=20)
        subprocess.run([*enter, "wg", "addconf", "wg0", str(conf)], check=True, timeout=120)

    def enter(self, index: int) -> list[str]:
        return ["nsenter", "-t", str(self.procs[index].pid), "--net", "--mount", "--"]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        self.procs.clear()
        self.names.clear()


def config(tmp: Path, name: str, netns: list[str]) -> Path:
    conf = tmp / f"{name}.conf"
    conf.write_text(f"[general]\ncycle_time = {CYCLE_S:g}\nping_interval = 2\nloglevel = 30\n"
                    + (f"netns = {' '.join(netns)}\n" if netns else "")
                    + f"[output:influx]\nfilename = {tmp / (name + '.lp')}\n")
    return conf


def measure(argv: list[str], env: dict[str, str], warmup: float, seconds: float, log: Path) -> tuple[float, float]:
    """(CPU ms per cycle, RSS MB)."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: see {log}")
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        used = cpu_seconds(proc.pid) - before
        rss = rss_mb(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    return used * 1000 / (seconds / CYCLE_S), rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--namespaces", type=int, default=20)
    parser.add_argument("--peers", type=int, default=1000, help="in all, in each arrangement")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wgtrack-bench-netns-"))
    ours = [sys.executable, "-m", "wgtrack", "-c"]
    env = {**PATH, "PYTHONPATH": str(REPO)}
    results: dict[str, list[tuple[float, float]]] = {}
    log = tmp / "contenders.log"
    try:
        with Namespaces(tmp, "o", 1, args.peers) as one, \
                Namespaces(tmp, "m", args.namespaces, args.peers // args.namespaces) as many:
            floor = " ; ".join(f"{' '.join(many.enter(i))} wg show all dump >/dev/null" for i in range(many.count))
            contenders = {
                f"wgtrack, netns = 1 namespace of {args.peers}": ([*ours, str(config(tmp, "one", one.names))], env),
                f"wgtrack, netns = {many.count} namespaces of {many.peers}":
                    ([*ours, str(config(tmp, "many", many.names))], env),
                f"wgtrack inside the namespace of {args.peers} (no netns)":
                    ([*one.enter(0), *ours, str(config(tmp, "inside", []))], env),
                f"wg show all dump in each of the {many.count} namespaces, by nsenter (the old way)":
                    (["sh", "-c", f"while :; do {floor}; sleep {CYCLE_S:g}; done"], PATH),
            }
            for _ in range(args.runs):
                for name, (argv, contender_env) in contenders.items():
                    results.setdefault(name, []).append(measure(argv, contender_env, args.warmup, args.seconds, log))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    print(f"\nCPU per {CYCLE_S:g} s cycle (own + children) and RSS, medians of {args.runs} run(s) of "
          f"{args.seconds:g} s; target: the many namespaces cost at most 2x the one\n")
    print("| contender | CPU/cycle | RSS |\n|---|---|---|")
    medians = {}
    for name, runs in results.items():
        cpu, rss = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        medians[name] = cpu
        print(f"| {name} | {cpu:.1f} ms | {rss:.1f} MB |", flush=True)
    names = list(medians)
    print(f"\nratio, {names[1]} / {names[0]}: {medians[names[1]] / medians[names[0]]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
