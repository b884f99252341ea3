"""``make demo``: a real WireGuard lab, wgtrack tracking it, one link broken and healed on a loop.

Run as root. Ctrl-C (or ``--duration`` running out) removes everything the demo made.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from tests import lp
from tests.daemon_helpers import write_config
from tests.lab import Lab

SCENARIO_PERIOD_S = 90.0
BREAK_AT_S, HEAL_AT_S = 15.0, 40.0  # peer-b: blackholed, then healed
MOVE_AT_S = 55.0  # peer-a (reached as a.lab.test) gets a new address and its DNS record follows
A_ADDRESSES = ("198.51.100.11", "198.51.100.21")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _fmt(value: object, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


# One line per state, shown under the table the first time the state appears.
EXPLAIN = {
    "up:ok": "up:ok: evidence that crossed the tunnel both ways (a probe reply or a completed handshake)",
    "idle": "idle: no evidence either way (no traffic, keepalive or probes); not called down",
    "down": "down: probes to an answering target failed (or the handshake is stale); nothing to re-resolve",
    "down:waiting": "down:waiting: down; its hostname is re-resolved after cycles_wait quiet cycles",
    "down:checking": "down:checking: re-resolving its hostname every cycles_checkperiod cycles",
    "down:backingoff": "down:backingoff: still down; re-resolving with a doubling interval",
    "down:slowchecking": "down:slowchecking: re-resolving every cycles_slowcheckingperiod cycles",
}
STATUS_WIDTH = max(len(s) for s in EXPLAIN)


def render(lab: Lab, out: Path, log: Path, elapsed: float, note: str, seen: list[str]) -> str:
    try:
        points = lp.parse(out.read_text())
    except (FileNotFoundError, ValueError):
        points = []
    names = {h.public_key: name for name, h in lab.hosts.items()}
    hostnames = {lab.hosts[p].public_key: f"{p}.lab.test" for p in lab.peer_names if p == lab.hostname_peer}
    rows = [f"wgtrack demo  {elapsed:6.0f} s   (Ctrl-C removes the lab)   {note}", "",
            f"{'peer':<8} {'status':<{STATUS_WIDTH}} {'up':<3} {'hs age':>7} {'rtt':>8} {'rx':>8} {'tx':>8}  endpoint"]
    peers = sorted((p for p in points if p.measurement == "wgtrack"),
                   key=lambda p: p.tags.get("friendly_name") or p.tags["peer"])  # stable order
    for p in peers:
        f = p.fields
        name = p.tags.get("friendly_name") or names.get(p.tags["peer"], p.tags["peer"][:8])
        endpoint = str(f.get("endpoint", "-"))
        if p.tags["peer"] in hostnames:
            endpoint = f"{hostnames[p.tags['peer']]} -> {endpoint}"
        rows.append(f"{name:<8} {f['status']!s:<{STATUS_WIDTH}} {f['is_up']!s:<3} "
                    f"{_fmt(f.get('handshake_age_s'), 's'):>7} {_fmt(f.get('rtt_ms'), 'ms'):>8} "
                    f"{f['transfer_rx']!s:>8} {f['transfer_tx']!s:>8}  {endpoint}")
        if f["status"] not in seen:
            seen.append(str(f["status"]))
    rows += ["", *(f"  {EXPLAIN.get(state, state)}" for state in seen)]
    tracker = next((p for p in points if p.measurement == "wgtrack_tracker"), None)
    if tracker:
        rows.append(f"\ntracker: cycle {tracker.fields['cycle']}, wg ok {tracker.fields['wg_ok']}, "
                    f"cycle took {_fmt(tracker.fields['cycle_duration_s'], ' s')}")
    rows.append(f"\nline-protocol file: {out}\nlast log lines:")
    text = log.read_text() if log.exists() else ""
    rows += ["  " + line for line in text.splitlines() if " DEBUG " not in line][-8:]
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=900.0, help="stop after this many seconds")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    lab = Lab()
    try:
        print("building the lab: 4 namespaces with wireguard-go, a bridge and dnsmasq ...", flush=True)
        lab.build()
        for peer in lab.peer_names:
            lab.handshake(peer)
        out, log = lab.dir / "wgtrack.lp", lab.dir / "wgtrack.log"
        conf = write_config(lab.dir / "wgtrack.conf", out, cycle_time=2, ping_interval=1, ping_failafternum=2,
                            ping_timeout=0.5, wg_config_dir=lab.wg_config_dir, loglevel="info")
        daemon = lab.daemon(conf, stderr=log)
        clear = "\033[H\033[2J" if sys.stdout.isatty() else "\n"
        started, broken, moved, note = time.monotonic(), False, 0, "all links healthy"
        seen: list[str] = []
        while (elapsed := time.monotonic() - started) < args.duration:
            if daemon.poll() is not None:
                print(f"wgtrack exited with {daemon.returncode}:\n{log.read_text()}")
                return 1
            phase = elapsed % SCENARIO_PERIOD_S
            if not broken and BREAK_AT_S <= phase < HEAL_AT_S:
                lab.blackhole("b")
                broken, note = True, f"link to peer-b blackholed (nft drop) at {elapsed:.0f} s: watch it go down"
            elif broken and phase >= HEAL_AT_S:
                lab.heal("b")
                broken, note = False, f"link to peer-b healed at {elapsed:.0f} s: watch it come back"
            elif phase >= MOVE_AT_S and moved <= int(elapsed // SCENARIO_PERIOD_S):
                moved += 1
                new_ip = A_ADDRESSES[moved % 2]
                lab.set_dns("a.lab.test", new_ip)
                lab.move_underlay("a", new_ip)
                note = (f"peer-a moved to {new_ip} at {elapsed:.0f} s and a.lab.test now says so: "
                        "watch wgtrack re-resolve it")
            print(clear + render(lab, out, log, elapsed, note, seen), flush=True)
            time.sleep(1.0 if sys.stdout.isatty() else 5.0)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        lab.close()
        print("lab removed: namespaces, processes and files are gone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
