"""A path-MTU black hole in the real lab (docs/link-state.md, "Path MTU"): nft on two spokes
drops WireGuard packets longer than 1,200 bytes. Small pings pass; full-size packets are lost.
wgtrack, started with the hole in place and the shipped settings, flags both links up:degraded
(mtu) within 60 s, one probed over IPv4 and one over IPv6, and reports the largest inner packet
that passes to within 16 bytes of the truth, worked out below and checked with ``ping -M do``.
Removing the rule clears the reason: the path is full again within a minute (a short path is
searched every minute), and the link up:ok after the 5 minutes of hysteresis."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import start_in_lab
from tests.lab import WG_PORT, Lab, run, wait_until
from tests.test_lab_lifecycle import HOOK_PORT, jsonl, start_receiver

pytestmark = pytest.mark.lab
SHIPPED = {"cycle_time": 5, "ping_interval": 1, "probe_interval": 1, "loglevel": "info"}
LIMIT = 1200  # nft drops WireGuard packets (outer, IP header included) longer than this
TUNNEL_MTU = 1420  # wireguard-go's default


def true_path_mtu() -> int:
    """The largest inner packet that passes: WireGuard pads it to 16 bytes and wraps it in an
    outer IPv4 header (20), UDP (8), its data header (16) and the Poly1305 tag (16)."""
    padded = (LIMIT - 20 - 8 - 16 - 16) // 16 * 16
    return padded


def passes_df(lab: Lab, target: str, size: int) -> bool:
    """``ping -M do`` of ``size``-byte packets (IP header included) from mon: any of 3 answered."""
    header = 48 if ":" in target else 28
    proc = subprocess.run(["ip", "netns", "exec", lab.hosts["mon"].ns, "ping", "-M", "do", "-c", "3", "-i", "0.2",
                           "-W", "1", "-q", "-s", str(size - header), target], capture_output=True, timeout=15)
    return proc.returncode == 0


def hole(lab: Lab, host: str) -> str:
    table = f"{lab.prefix[:-1]}mtu"
    run("ip", "netns", "exec", lab.hosts[host].ns, "nft", "-f", "-", input=(
        f"table inet {table} {{\n  chain i {{ type filter hook input priority 0; "
        f"udp dport {WG_PORT} meta length > {LIMIT} counter drop; }}\n}}\n"))
    return table


@pytest.mark.slow
def test_a_path_mtu_black_hole_is_flagged_measured_and_cleared(tmp_path: Path) -> None:
    with Lab(peers=("a", "b")) as lab:
        a, b = lab.hosts["a"].public_key, lab.hosts["b"].public_key
        targets = {"a": lab.hosts["a"].tunnel, "b": lab.hosts["b"].tunnel6}  # b is probed over IPv6
        tables = {host: hole(lab, host) for host in ("a", "b")}
        truth = true_path_mtu()
        lab.handshake("a")
        lab.handshake("b")
        for host, target in targets.items():  # the truth, checked by ping -M do
            assert passes_df(lab, target, truth), (host, truth)
            assert not passes_df(lab, target, truth + 1), (host, truth + 1)
            assert passes_df(lab, target, 200) and not passes_df(lab, target, TUNNEL_MTU)
        hooks = tmp_path / "hooks.jsonl"
        start_receiver(lab, HOOK_PORT, hooks, tmp_path / "receiver.log")
        started = time.time()
        w = start_in_lab(lab, tmp_path, f"[output:webhook]\nurl = http://127.0.0.1:{HOOK_PORT}/hook\n"
                                        f"[peer:{b}]\nping_target = {targets['b']}\n", **SHIPPED)
        try:
            def degraded() -> list[dict[str, object]]:
                return [e for e in jsonl(hooks) if e["kind"] == "peer_degraded"]

            wait_until("both flagged", lambda: len(degraded()) == 2, 70, interval=0.5)
            flagged = {str(e["public_key"]): e for e in degraded()}
            fields = lp.peers(w.text())
            for key in (a, b):
                event = flagged[key]
                details = dict(event["details"])  # type: ignore[call-overload]
                took = float(str(event["time"])) - started
                print(f"{'a over IPv4' if key == a else 'b over IPv6'}: flagged {took:.1f} s after start; "
                      f"reported path MTU {details['path_mtu']} (true {truth}, tunnel {details['mtu']}): "
                      f"{event['message']}")
                assert took <= 60 and details["cause"] == "mtu" and details["mtu"] == TUNNEL_MTU
                assert abs(int(details["path_mtu"]) - truth) <= 16
                assert f"set MTU = {details['path_mtu']} on both ends" in str(event["message"])
                assert w.status(key) == "up:degraded" and fields[key].fields["degraded"] == "mtu"
                assert fields[key].fields["path_mtu"] == details["path_mtu"]
            assert [e for e in jsonl(hooks) if e["kind"] == "peer_down"] == []

            for host, table in tables.items():
                run("ip", "netns", "exec", lab.hosts[host].ns, "nft", "delete", "table", "inet", table)
            fixed = time.time()
            wait_until("the full path seen again", lambda: all(
                lp.peers(w.text())[k].fields.get("path_mtu") == TUNNEL_MTU for k in (a, b)), 90, interval=1)
            seen = time.time() - fixed
            wait_until("recovered", lambda: sum(e["kind"] == "peer_recovered" for e in jsonl(hooks)) == 2,
                       60 + 300 + 60, interval=2)
            recovered = max(float(str(e["time"])) for e in jsonl(hooks) if e["kind"] == "peer_recovered") - fixed
            print(f"rule removed: full path seen {seen:.0f} s later, up:ok {recovered:.0f} s later")
            assert recovered >= 300  # the hysteresis holds, then lets go
            assert all(w.status(k) == "up:ok" for k in (a, b))
        finally:
            w.stop()
