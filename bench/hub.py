"""``make bench`` (the hub part): the whole running daemon on a K-peer hub, side by side in one
run with wgtrack 0.2.0 (from PyPI, in a venv made here) and with ``wg show all dump`` alone
(the floor). The scale issue's set-up and targets.

1. The table: one real wireguard-go interface in a lab namespace; K peers added with
   ``wg addconf`` (random keys, one /128 allowed IP each, no endpoints, never handshaked);
   0.2.0's own config (``cycle_time = 2``, ``ping_interval = 2``), and ours once more with
   ``ping_interval = 0``. Each contender runs alone for a warm-up and then ``--seconds``; CPU
   is the process's own plus its reaped children's (``/proc/<pid>/stat`` utime, stime, cutime,
   cstime), per cycle; RSS is VmRSS at the end. Medians of ``--runs``.
2. 50,000 peers on one interface, ``cycle_time = 5``: every cycle's duration and the worst
   event-loop lag, read from the heartbeat line of the Telegraf file (ours only: the target
   is ours).
3. A mixed hub: 5,000 peers whose endpoints answer nothing (a host on the lab's LAN that drops
   WireGuard's UDP) plus the lab's three live peers, cycle 2 s: echo requests per second into the
   tunnel (an nft counter in the hub's namespace, so 0.2.0 is counted the same way) and CPU
   per cycle; then a live peer is blackholed and healed: time to down and to up.

Root, Debian 12. Ratios are against the floor and against 0.2.0, from medians.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.run import ensure_020
from tests import lp
from tests.lab import REPO, Lab, run

CYCLE_S = 2.0
BREAKS = 3  # a live peer blackholed and healed this often per mixed-hub run (the median is shown)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PATH = {"PATH": "/usr/sbin:/usr/bin:/bin"}
# A host on the lab's LAN that drops WireGuard's UDP: it answers nothing, as a departed peer's
# last address on the internet does. Not an address where no host is: WireGuard's packets to
# an unresolved neighbour wait in the kernel's neighbour queue and hold wireguard-go's socket
# send buffer full, and then every link of the hub stops (docs/scale.md).
SILENT_IP = "198.51.100.250"
SILENT_ENDPOINT = f"{SILENT_IP}:51820"


def add_peers(lab: Lab, count: int, endpoint: str | None = None) -> None:
    lines = []
    for i in range(count):
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        lines += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = fd00:1::{i + 1:x}/128"]
        lines += [f"Endpoint = {endpoint}", ""] if endpoint else [""]
    conf = lab.dir / "hub-peers.conf"
    conf.write_text("\n".join(lines))
    lab.wg("mon", "addconf", "wg0", str(conf), timeout=300)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spawn(lab: Lab, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(lab.dir / "contenders.log", "ab") as log:  # kept with the lab while it runs: why one exited
        proc = subprocess.Popen(["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-m", "-n", *argv],
                                stdout=subprocess.DEVNULL, stderr=log, env=env)
    lab.procs.append(proc)
    return proc


def measure(lab: Lab, argv: list[str], env: dict[str, str], warmup_s: float, seconds: float,
            cycle_s: float = CYCLE_S) -> tuple[float, float]:
    """(CPU ms per cycle, RSS MB) of ``argv`` run in mon's namespaces."""
    proc = spawn(lab, argv, env)
    try:
        time.sleep(warmup_s)
        if proc.poll() is not None:
            tail = (lab.dir / "contenders.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {' / '.join(tail)}")
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        after = cpu_seconds(proc.pid)
        rss = rss_mb(proc.pid)
    finally:
        lab._stop(proc)
    return (after - before) * 1000 / (seconds / cycle_s), rss


def config(tmp: Path, name: str, extra: str = "", cycle_s: float = CYCLE_S, ping_interval: int = 2,
           history: bool = True) -> Path:
    """A contender's config; ours keep their history store in the lab's directory (0.2.0 ignores
    the section: it reads only the keys it knows)."""
    conf = tmp / f"{name}.conf"
    store = f"[history]\npath = {tmp / (name + '.db')}\n" if history else "[history]\nenabled = no\n"
    conf.write_text(f"[general]\ncycle_time = {cycle_s:g}\nping_interval = {ping_interval}\nloglevel = 30\n{extra}"
                    f"[output:influx]\nfilename = {tmp / (name + '.lp')}\n" + (store if name != "old" else ""))
    return conf


def contenders(tmp: Path, python_020: str, baseline: Path | None = None) -> dict[str, tuple[list[str], dict[str, str]]]:
    ours = [sys.executable, "-m", "wgtrack", "-c"]
    env = {**PATH, "PYTHONPATH": str(REPO)}
    # Another tree of ours (a refactor's "before", as a git worktree), with the same config but
    # its own history store: each contender's first run starts afresh and its next ones resume.
    # It runs from its own directory: ``-m`` puts the working directory first on the path. env
    # execs it, so the process measured is that wgtrack.
    before = {f"wgtrack ({baseline.name}, baseline)": (
        ["env", "-C", str(baseline), *ours, str(config(tmp, "baseline"))],
        {**PATH, "PYTHONPATH": str(baseline)})} if baseline else {}
    return {**before,
        "wg show all dump alone": (["sh", "-c", f"while :; do wg show all dump >/dev/null; sleep {CYCLE_S:g}; done"],
                                   PATH),
        "wgtrack 0.2.0": ([python_020, "-m", "wgtrack", "-c", str(config(tmp, "old"))], PATH),
        "wgtrack (this tree)": ([*ours, str(config(tmp, "ours"))], env),
        "wgtrack (this tree), history off": ([*ours, str(config(tmp, "nohistory", history=False))], env),
        "wgtrack (this tree), ping_interval = 0": ([*ours, str(config(tmp, "quiet", ping_interval=0))], env),
    }


def table(sizes: list[int], runs: int, warmup: float, seconds: float, python_020: str,
          baseline: Path | None = None) -> None:
    rows = []
    for count in sizes:
        lab = Lab(peers=())
        try:
            lab.build()
            add_peers(lab, count)
            figures: dict[str, list[tuple[float, float]]] = {}
            for _ in range(runs):
                for name, (argv, env) in contenders(lab.dir, python_020, baseline).items():
                    figures.setdefault(name, []).append(measure(lab, argv, env, warmup, seconds))
        finally:
            lab.close()
        cpu = {n: statistics.median(c for c, _ in f) for n, f in figures.items()}
        rss = {n: statistics.median(r for _, r in f) for n, f in figures.items()}
        floor, old = cpu["wg show all dump alone"], cpu["wgtrack 0.2.0"]
        for name in figures:
            rows.append(f"| {count:,} | {name} | {cpu[name]:.1f} ms | {cpu[name] / floor:.2f}× | "
                        f"{cpu[name] / old:.2f}× | {rss[name]:.1f} MB | {rss[name] / rss['wgtrack 0.2.0']:.2f}× |")
    print(f"\nCPU per cycle (own + children), cycle {CYCLE_S:g} s, medians of {runs} run(s) of {seconds:g} s each; "
          "targets: ours <= 2x the floor at 5,000 and 10,000, <= 0.2.0 at 1,000 and 5,000, RSS <= 1.3x 0.2.0\n")
    print("| peers | contender | CPU/cycle | vs floor | vs 0.2.0 | RSS | RSS vs 0.2.0 |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows), flush=True)


def heartbeats(path: Path) -> dict[int, tuple[float, float]]:
    """cycle -> (cycle_duration_s, loop_lag_ms) from the Telegraf file's heartbeat line."""
    try:
        fields = lp.tracker(path.read_text()).fields
    except (FileNotFoundError, ValueError, StopIteration, KeyError):
        return {}
    return {int(str(fields["cycle"])): (float(str(fields["cycle_duration_s"])), float(str(fields["loop_lag_ms"])))}


def big(count: int, seconds: float, history: bool = True) -> None:
    """``count`` peers, cycle 5 s: every cycle's duration and worst loop lag."""
    lab = Lab(peers=())
    try:
        lab.build()
        add_peers(lab, count)
        conf = config(lab.dir, "big", cycle_s=5.0, history=history)
        out = lab.dir / "big.lp"
        proc = spawn(lab, [sys.executable, "-m", "wgtrack", "-c", str(conf)], {**PATH, "PYTHONPATH": str(REPO)})
        seen: dict[int, tuple[float, float]] = {}
        started = time.monotonic()
        cpu_before = None
        while time.monotonic() - started < seconds:  # bounded
            seen.update(heartbeats(out))
            if cpu_before is None and len(seen) >= 2:
                cpu_before, cpu_at = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(0.5)
        cpu = (cpu_seconds(proc.pid) - cpu_before) / ((time.monotonic() - cpu_at) / 5.0) * 1000 if cpu_before else 0
        rss = rss_mb(proc.pid)
        lab._stop(proc)
    finally:
        lab.close()
    later = {c: v for c, v in seen.items() if c >= 2}  # the first cycle meets every peer (and logs it)
    durations = sorted(d for d, _ in later.values())
    lags = sorted(lag for _, lag in later.values())
    print(f"\n{count:,} peers, cycle_time 5, history {'on' if history else 'off'}: {len(later)} cycles seen after "
          f"the first; cycle duration median "
          f"{statistics.median(durations):.2f} s, max {durations[-1]:.2f} s (target: every one < 5 s); worst loop lag "
          f"median {statistics.median(lags):.0f} ms, max {lags[-1]:.0f} ms (target <= 100 ms); first cycle "
          f"{seen.get(1, (float('nan'), 0))[0]:.2f} s; CPU {cpu:.0f} ms per cycle; RSS {rss:.0f} MB", flush=True)


def nft_counts(lab: Lab) -> int:
    out = run("ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "-j", "list", "table", "inet", "wgtbench")
    total = 0
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        for expr in (rule or {}).get("expr", []):
            if "counter" in expr:
                total += int(expr["counter"]["packets"])
    return total


def _status(out: Path, key: str) -> str:
    try:
        point = lp.peers(out.read_text()).get(key)
    except (FileNotFoundError, ValueError):
        return ""
    return "" if point is None else str(point.fields.get("status"))


def _until(out: Path, key: str, wanted: str, timeout: float = 120.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:  # bounded, 0.05 s polls
        if _status(out, key).startswith(wanted):
            return time.monotonic() - t0
        time.sleep(0.05)
    return float("inf")


def _mixed_run(kind: str, python_020: str, warmup: float, seconds: float) -> tuple[float, ...]:
    lab = Lab()
    try:
        lab.build()
        for peer in lab.peer_names:
            lab.handshake(peer)
        lan = lab.prefix + "lan"
        run("ip", "-n", lan, "addr", "add", f"{SILENT_IP}/24", "dev", "br0")
        run("ip", "netns", "exec", lan, "nft", "-f", "-", input=(
            f"table inet {lab.prefix[:-1]}silent {{\n  chain i {{ type filter hook input priority 0; "
            f"ip daddr {SILENT_IP} udp dport 51820 drop; }}\n}}\n"))
        add_peers(lab, 5000, SILENT_ENDPOINT)
        # what wg-quick would add for their allowed IPs: probes to them go into the tunnel
        run("ip", "-n", lab.hosts["mon"].ns, "-6", "route", "add", "fd00:1::/64", "dev", "wg0")
        rules = ("table inet wgtbench {\n  chain o { type filter hook output priority 0;\n"
                 '    oifname "wg0" icmpv6 type echo-request counter\n'
                 '    oifname "wg0" icmp type echo-request counter\n  }\n}\n')
        run("ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "-f", "-", input=rules)
        conf = config(lab.dir, kind, f"wg_config_dir = {lab.wg_config_dir}\n" if kind == "ours" else "")
        if kind == "old":  # 0.2.0 reads /etc/wireguard only: the lab's configs there, in mon's mounts
            argv = ["sh", "-c", f"mount --bind {lab.wg_config_dir} /etc/wireguard && "
                    f"exec {python_020} -m wgtrack -c {conf}"]
            env = PATH
        else:
            argv, env = [sys.executable, "-m", "wgtrack", "-c", str(conf)], {**PATH, "PYTHONPATH": str(REPO)}
        proc = spawn(lab, argv, env)
        started = time.monotonic()
        windows = []
        for begin in (warmup, 90.0):  # the first minute down (the fast lane), then the back-off
            time.sleep(max(0.0, started + begin - time.monotonic()))
            before_cpu, before_probes = cpu_seconds(proc.pid), nft_counts(lab)
            time.sleep(seconds)
            windows += [(cpu_seconds(proc.pid) - before_cpu) * 1000 / (seconds / CYCLE_S),
                        (nft_counts(lab) - before_probes) / seconds]
        out, b = lab.dir / f"{kind}.lp", lab.hosts["b"].public_key
        _until(out, b, "up")
        downs, ups = [], []
        for _ in range(BREAKS):  # bounded: each at most two _until timeouts
            lab.blackhole("b")
            downs.append(_until(out, b, "down"))
            lab.heal("b")
            ups.append(_until(out, b, "up"))
            time.sleep(5.0)  # past the heal's own probes
        lab._stop(proc)
        return (*windows, statistics.median(downs), statistics.median(ups))
    finally:
        lab.close()


def mixed(runs: int, warmup: float, seconds: float, python_020: str) -> None:
    """5,000 silent peers with endpoints plus the three live ones."""
    rows = []
    for name, kind in (("wgtrack 0.2.0", "old"), ("wgtrack (this tree)", "ours")):
        results = [_mixed_run(kind, python_020, warmup, seconds) for _ in range(runs)]
        med = [statistics.median(r[i] for r in results) for i in range(6)]
        rows.append(f"| {name} | {med[0]:.0f} ms | {med[1]:.0f} | {med[2]:.0f} ms | {med[3]:.0f} | {med[4]:.1f} s | "
                    f"{med[5]:.1f} s |")
    print(f"\nMixed hub: 5,000 peers with endpoints that answer nothing + 3 live, cycle {CYCLE_S:g} s, "
          f"ping_interval 2, medians of {runs}. Windows of {seconds:g} s from {warmup:g} s (the silent peers' first "
          f"minute down) and from 90 s; then a live peer blackholed and healed {BREAKS} times (median)\n")
    print(f"| contender | CPU/cycle from {warmup:g} s | echo requests/s | CPU/cycle from 90 s | echo requests/s | "
          "live peer down after | up after heal |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default="1000,5000,10000", help="hub sizes for the table, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per contender and run")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", type=int, default=50_000, help="peers for the cycle/loop-lag run (0: skip)")
    parser.add_argument("--parts", default="table,big,mixed")
    parser.add_argument("--mixed-runs", type=int, default=1, help="each takes about 2.5 minutes per contender")
    parser.add_argument("--baseline", type=Path, help="another wgtrack tree (e.g. a git worktree of an older commit) "
                        "in the table, side by side with this one")
    args = parser.parse_args()
    python_020 = ensure_020()
    parts = args.parts.split(",")
    if "table" in parts:
        table([int(x) for x in args.peers.split(",")], args.runs, args.warmup, args.seconds, python_020,
              args.baseline.resolve() if args.baseline else None)
    if "big" in parts and args.big:
        for history in (True, False):  # side by side: the store's cost at the biggest hub
            big(args.big, 60.0, history)
    if "mixed" in parts:
        mixed(args.mixed_runs, 30.0, args.seconds, python_020)
    return 0


if __name__ == "__main__":
    sys.exit(main())
