"""``make bench`` (the floods part): wgtrack's CPU must not grow with the traffic in the tunnels.

One real lab (mon, the hub, and a spoke ``a``). Each contender runs alone in mon, cycle 2 s,
probes every cycle, and three floods come from ``a``, each for ``--seconds``:

1. ``ping -f -s 1000`` through the tunnel to mon's tunnel address (the tunnel's data);
2. ``ping -f`` to mon's own underlay address, outside the tunnel (other ICMP of the host);
3. forged handshake initiations (148-byte WireGuard type-1 messages) to mon's listen port,
   paced at ``--forged-rate`` a second: what the nflog rule's limit must bound.

CPU is the contender's own plus its reaped children's (``/proc/<pid>/stat``) over the flood,
in % of one core; idle is the same span with no flood. Contenders: wgtrack 0.2.0 (from PyPI);
ours with no trigger; ours with the nflog trigger and docs/link-state.md's rules (handshake
messages only); ours with the trigger and the rule the docs had before (every packet of the
port logged); and, with ``--baseline TREE``, another tree of ours with no trigger (say, before
the probe sockets were filtered). Medians of ``--runs``. Root, Debian 12.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.hub import cpu_seconds, spawn
from bench.run import ensure_020
from tests.lab import MON_TUNNEL, MON_UNDERLAY, REPO, WG_PORT, Lab, run
from tests.test_lab_trigger import NFT_PREFIX, documented_rules

PATH = {"PATH": "/usr/sbin:/usr/bin:/bin"}
GROUP = 5
FLOODS = ("idle", "tunnel ping -f", "underlay ping -f", "forged initiations")
# Sends forged initiations from a's namespace at a steady rate, for a while (bounded both ways).
_FORGER = r"""
import socket, sys, time
target, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
message = b"\x01\0\0\0" + bytes(144)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
sent = 0
while time.monotonic() - start < seconds:
    due = int((time.monotonic() - start) * rate)
    while sent < due:
        sock.sendto(message, (target, port))
        sent += 1
    time.sleep(0.001)
print(sent)
"""


def rules(lab: Lab, documented: bool | None) -> None:
    """mon's nflog rules: the documented ones, the old every-packet one, or none (None)."""
    table = f"{lab.prefix[:-1]}nflog"
    run("ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "delete", "table", "inet", table, check=False)
    if documented is None:
        return
    body = ([rule.removeprefix(NFT_PREFIX) for rule in documented_rules()] if documented
            else [f"udp dport {WG_PORT} log group {GROUP}"])
    text = (f"table inet {table} {{\n  chain i {{ type filter hook input priority 0;\n"
            + "".join(f"    {rule}\n" for rule in body) + "  }\n}\n")
    run("ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "-f", "-", input=text)


def flood(lab: Lab, kind: str, seconds: float, forged_rate: float) -> subprocess.Popen[bytes] | None:
    ns = lab.hosts["a"].ns
    deadline = str(int(seconds))
    if kind == "tunnel ping -f":
        argv = ["ping", "-f", "-q", "-s", "1000", "-w", deadline, MON_TUNNEL]
    elif kind == "underlay ping -f":
        argv = ["ping", "-f", "-q", "-w", deadline, MON_UNDERLAY]
    elif kind == "forged initiations":
        argv = [sys.executable, "-c", _FORGER, MON_UNDERLAY, str(WG_PORT), str(forged_rate), str(seconds)]
    else:
        return None
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def triggered_reads(runs: Path) -> int:
    """How many ``wg show <if> dump`` (the trigger's reads; a cycle's is ``show all dump``) the
    counting wrapper has seen."""
    if not runs.exists():
        return 0
    return sum(1 for line in runs.read_text().splitlines() if line.startswith("show wg"))


def counting_wg(tmp: Path, name: str) -> Path:
    """A ``wg_command`` that notes each run's arguments, then is wg."""
    wrapper = tmp / f"{name}.wg"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {tmp / (name + ".wgruns")}\nexec wg "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def measure(lab: Lab, argv: list[str], env: dict[str, str], seconds: float, forged_rate: float,
            runs: Path) -> dict[str, float]:
    """% of a core per flood for one contender, and its triggered reads a second in each."""
    proc = spawn(lab, argv, env)
    try:
        time.sleep(6.0)  # started, first cycles done, sockets open
        if proc.poll() is not None:
            raise RuntimeError(f"{argv} exited {proc.returncode}: see {lab.dir / 'contenders.log'}")
        figures = {}
        for kind in FLOODS:
            flooder = flood(lab, kind, seconds, forged_rate)
            before, started, reads = cpu_seconds(proc.pid), time.monotonic(), triggered_reads(runs)
            if flooder is None:
                time.sleep(seconds)
            else:
                flooder.wait(timeout=seconds + 30)
            elapsed = time.monotonic() - started
            figures[kind] = (cpu_seconds(proc.pid) - before) / elapsed * 100
            figures[kind + " reads"] = (triggered_reads(runs) - reads) / elapsed
            time.sleep(1.0)
        return figures
    finally:
        lab._stop(proc)


def config(tmp: Path, name: str, trigger: bool, ours: bool = True, manage: bool = False) -> Path:
    """Cycle 2 s, a probe every cycle (0.2.0's keys), the lab's wg configs and a counting wg for
    ours; the trigger with its rules kept by wgtrack (``manage``) or by the bench."""
    conf = tmp / f"{name}.conf"
    conf.write_text("[general]\ncycle_time = 2\nping_interval = 1\nloglevel = 30\n"
                    + (f"wg_config_dir = {tmp / 'wireguard'}\nwg_command = {counting_wg(tmp, name)}\n" if ours else "")
                    + (f"[trigger:nflog]\ngroup = {GROUP}\nmanage_rule = {'yes' if manage else 'no'}\n"
                       if trigger else "")
                    + f"[output:influx]\nfilename = {tmp / (name + '.lp')}\n")
    return conf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="each flood (and the idle span)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--forged-rate", type=float, default=20_000.0, help="forged initiations a second")
    parser.add_argument("--baseline", type=Path, help="another wgtrack tree, with no trigger, in the same run")
    args = parser.parse_args()
    python_020 = ensure_020()
    ours = [sys.executable, "-m", "wgtrack", "-c"]
    env = {**PATH, "PYTHONPATH": str(REPO)}
    lab = Lab(peers=("a",))
    results: dict[str, list[dict[str, float]]] = {}
    try:
        lab.build()
        lab.handshake("a")
        tmp = lab.dir
        contenders: list[tuple[str, list[str], dict[str, str], bool | None]] = [
            ("wgtrack 0.2.0", [python_020, "-m", "wgtrack", "-c", str(config(tmp, "old", False, ours=False))], PATH,
             None),
            ("wgtrack (this tree), no trigger", [*ours, str(config(tmp, "plain", False))], env, None),
            ("wgtrack (this tree), trigger, its own table (manage_rule, the default)",
             [*ours, str(config(tmp, "managed", True, manage=True))], env, None),
            ("wgtrack (this tree), trigger, the documented rules by hand", [*ours, str(config(tmp, "docs", True))], env,
             True),
            ("wgtrack (this tree), trigger, every packet of the port logged", [*ours, str(config(tmp, "all", True))],
             env, False),
        ]
        if args.baseline:
            base = args.baseline.resolve()
            contenders.insert(1, (f"wgtrack ({base.name}, baseline), no trigger",
                                  ["env", "-C", str(base), *ours, str(config(tmp, "base", False))],
                                  {**PATH, "PYTHONPATH": str(base)}, None))
        for _ in range(args.runs):
            for name, argv, contender_env, documented in contenders:
                rules(lab, documented)
                wgruns = tmp / (argv[-1].rpartition("/")[2].removesuffix(".conf") + ".wgruns")
                results.setdefault(name, []).append(measure(lab, argv, contender_env, args.seconds, args.forged_rate,
                                                            wgruns))
    finally:
        lab.close()
    print(f"\n% of one core over each {args.seconds:g} s span (own + children), medians of {args.runs} run(s); "
          f"forged initiations at {args.forged_rate:,.0f}/s; targets: the tunnel flood <= 1 %, forged <= 5 %\n")
    print("| contender | " + " | ".join(FLOODS) + " |\n|---|" + "---|" * len(FLOODS))
    for name, runs in results.items():
        cells = [f"{statistics.median(r[kind] for r in runs):.1f} %" for kind in FLOODS]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nTriggered reads (`wg show <if> dump`) a second in each span, medians; min_interval 0.5 s allows "
          "at most 2 (0.2.0 and a tree without the trigger make none)\n")
    print("| contender | " + " | ".join(FLOODS) + " |\n|---|" + "---|" * len(FLOODS))
    for name, runs in results.items():
        cells = [f"{statistics.median(r[kind + ' reads'] for r in runs):.2f}" for kind in FLOODS]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
