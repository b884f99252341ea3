"""Evidence that means what it says, in the real lab, at wgtrack 0.2.0's settings (cycle 2 s,
ping every 2 cycles, down after 2 failed pings). One lab, three spokes, one run of about 4.5
minutes (marked ``slow``; CI runs it):

- peer-a drops ICMP echo requests (a healthy link with a silent target): traffic for a minute,
  then idle with keepalive 25 s both ways while handshakes renew. Never down, no ``peer_down``,
  no re-resolution (it is the lab's hostname peer), and the silent target is shown.
- peer-b drops our packets for 4 minutes while its keepalives reach us (a one-way break): down
  within seconds and down to the end, no ``up`` in between, in the file, the log and the events.
- peer-c only knocks: its inbound WireGuard port is dropped from the start while it keeps
  initiating. Never up until the drop is lifted and a handshake completes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import Watched, start_in_lab
from tests.lab import MON_TUNNEL, REPO, WG_PORT, Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SETTINGS = dict(cycle_time=2, ping_interval=2, ping_failafternum=2, loglevel="info")
BREAK_S = 240.0  # the one-way break: longer than REJECT_AFTER_TIME, so the peer's key expires too
PHASE1_S = 60  # peer-a sends traffic, then stays idle with keepalive
KNOCK_S = 75.0  # peer-c knocks this long before its drop is lifted
RECEIVER_PORT = 18099


def nft(lab: Lab, host: str, table: str, rule: str) -> None:
    rules = f"table inet {lab.prefix[:-1]}{table} {{\n  chain i {{ type filter hook input priority 0; {rule}; }}\n}}\n"
    subprocess.run(["ip", "netns", "exec", lab.hosts[host].ns, "nft", "-f", "-"], input=rules, text=True,
                   check=True, timeout=10)


def nft_delete(lab: Lab, host: str, table: str) -> None:
    lab.exec(host, "nft", "delete", "table", "inet", f"{lab.prefix[:-1]}{table}")


def spawn_in(lab: Lab, host: str, *argv: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["ip", "netns", "exec", lab.hosts[host].ns, *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    lab.procs.append(proc)  # the lab kills it on close, pass or fail
    return proc


def events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_evidence_silent_target_one_way_break_and_knocking(lab: Lab, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # nsenter resets the cwd: the receiver needs the path
    a, b, c = (lab.hosts[p].public_key for p in ("a", "b", "c"))
    mon = lab.hosts["mon"].public_key
    # peer-a: drops our pings; keepalive 25 s both ways.
    nft(lab, "a", "icmp", "icmp type echo-request drop")
    lab.wg("mon", "set", "wg0", "peer", a, "persistent-keepalive", "25")
    lab.wg("a", "set", "wg0", "peer", mon, "persistent-keepalive", "25")
    # peer-b: keepalive from its side, so that its packets keep reaching us during the break.
    lab.wg("b", "set", "wg0", "peer", mon, "persistent-keepalive", "5")
    # peer-c: a fresh peer on both sides (no session), whose inbound WireGuard port is dropped.
    lab.wg("mon", "set", "wg0", "peer", c, "remove")
    lab.wg("mon", "set", "wg0", "peer", c, "allowed-ips", f"{lab.hosts['c'].tunnel}/32",
           "endpoint", f"{lab.hosts['c'].underlay}:{WG_PORT}")
    lab.wg("c", "set", "wg0", "peer", mon, "remove")
    nft(lab, "c", "knock", f"udp dport {WG_PORT} drop")
    lab.wg("c", "set", "wg0", "peer", mon, "allowed-ips", "192.0.2.0/24,fd00:2::/64",
           "endpoint", f"198.51.100.1:{WG_PORT}")

    hooks = tmp_path / "events.jsonl"
    lab.spawn_in_mon([sys.executable, "-m", "tests.receiver_main", str(RECEIVER_PORT), str(hooks)])
    status_file = tmp_path / "status.json"
    extra = (f"[output:json]\nfilename = {status_file}\n"
             f"[output:webhook]\nurl = http://127.0.0.1:{RECEIVER_PORT}/hook\n")
    w: Watched = start_in_lab(lab, tmp_path, extra, **SETTINGS)
    try:
        started = time.monotonic()
        spawn_in(lab, "a", "ping", "-q", "-i", "1", "-w", str(PHASE1_S), MON_TUNNEL)  # phase 1: traffic
        spawn_in(lab, "c", "ping", "-q", "-i", "1", "-w", str(int(KNOCK_S)), MON_TUNNEL)  # c keeps initiating
        w.wait_for("a and b up", lambda t: w.status(a) == "up:ok" and w.status(b) == "up:ok", 30)

        nft(lab, "b", "oneway", f"udp dport {WG_PORT} drop")  # our packets no longer reach b
        broke = time.monotonic()
        w.wait_for("b down", lambda t: (w.status(b) or "").startswith("down"), 20)
        detected = time.monotonic() - broke
        print(f"one-way break seen down {detected:.1f} s after it began")

        seen: dict[str, set[str]] = {"a": set(), "b": set(), "c": set()}
        lifted = None
        for _ in range(int(BREAK_S / 0.5) + 10):  # bounded: the break's length in 0.5 s polls
            elapsed = time.monotonic() - broke
            if elapsed >= BREAK_S:
                break
            text = w.text()
            peers = lp.peers(text) if text else {}
            for name, pub in (("a", a), ("b", b), ("c", c)):
                if pub in peers:
                    seen[name].add(str(peers[pub].fields["status"]))
            assert not (b in peers and peers[b].fields["status"] == "up:ok"), f"b reported up {elapsed:.0f} s in"
            if lifted is None:
                assert not (c in peers and peers[c].fields["status"] == "up:ok"), "c reported up while knocking"
                if time.monotonic() - started >= KNOCK_S:
                    knock_log, knock_events = w.log(), events(hooks)
                    nft_delete(lab, "c", "knock")
                    lifted = time.monotonic()
                    spawn_in(lab, "c", "ping", "-q", "-i", "1", "-w", "20", MON_TUNNEL)
            assert w.proc.poll() is None, w.log()
            time.sleep(0.5)
        assert lifted is not None
        log_during_break = w.log()
        events_during_break = events(hooks)
        nft_delete(lab, "b", "oneway")
        w.wait_for("b up after the break", lambda t: w.status(b) == "up:ok", 30)
        w.wait_for("c up once its handshake completes", lambda t: w.status(c) == "up:ok", 30)
        table = subprocess.run([sys.executable, "-m", "wgtrack", "status", "--file", str(status_file)],
                               capture_output=True, text=True, timeout=30,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        w.stop()
    log = w.log()
    print(f"statuses seen in the file: {seen}")
    print("\n".join(x for x in log.splitlines() if "peer-" in x or "webhook" in x))

    def kinds(evs: list[dict[str, object]], pub: str) -> list[object]:
        return [e["kind"] for e in evs if e.get("public_key") == pub and e["kind"] in ("peer_down", "peer_up")]

    # peer-a: healthy the whole time, its silent target shown, never re-resolved.
    assert seen["a"] == {"up:ok"}, seen["a"]
    assert kinds(events(hooks), a) == []
    assert "peer-a: probe target 192.0.2.11 is silent" in log
    assert log.count("peer-a: probe target") == 1  # said once
    assert "re-resolving a.lab.test" not in log
    doc = json.loads(status_file.read_text())
    peer_a = next(p for i in doc["interfaces"] for p in i["peers"] if p["public_key"] == a)
    assert peer_a["probe_silent"] is True and peer_a["status"] == "up:ok"
    assert lp.peers(w.text())[a].fields["probe_silent"] == 1
    line_a = next(x for x in table.stdout.splitlines() if "peer-a" in x)
    assert "silent" in line_a, table.stdout
    # peer-b: down from the first seconds to the end of the break, no up in between.
    assert detected < 10
    assert "up:ok" not in seen["b"] and all(s.startswith("down") for s in seen["b"]), seen["b"]
    assert kinds(events_during_break, b) == ["peer_down"]
    after_break = log_during_break[log_during_break.index("peer-b: up:ok -> down"):]
    assert "-> up:ok" not in "\n".join(x for x in after_break.splitlines() if "peer-b:" in x)
    assert "peer-b: probe target" not in log  # the end of the outage is no silent target
    assert kinds(events(hooks), b) == ["peer_down", "peer_up"]
    # peer-c: never up while it only knocked; up once the handshake completed.
    assert "up:ok" not in "\n".join(x for x in knock_log.splitlines() if "peer-c:" in x and "->" in x)
    assert "peer_up" not in kinds(knock_events, c)
    assert kinds(events(hooks), c)[-1] == "peer_up"
