"""The link engine in the real lab: detection, re-resolution after an IP change, back-off,
dead and lying DNS, probes off, idle links and roaming (wireguard-go, dnsmasq, nftables)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import Watched, start_in_lab, write_config
from tests.lab import REPO, Lab, run, wait_until
from tests.test_lab_lifecycle import HOOK_PORT, jsonl, start_receiver

pytestmark = pytest.mark.lab

FAST = dict(cycle_time=1, ping_interval=1, ping_failafternum=2, ping_timeout=0.5, cycles_wait=2, cycles_checking=4,
            cycles_checkperiod=2, cycles_slowcheckingperiod=8, dns_timeout=1, loglevel="debug")


def start(lab: Lab, tmp_path: Path, extra: str = "", **settings: object) -> Watched:
    return start_in_lab(lab, tmp_path, extra, **{**FAST, **settings})


@pytest.fixture
def watched() -> Iterator[list[Watched]]:
    started: list[Watched] = []
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.stop()


def key(lab: Lab, peer: str) -> str:
    return lab.hosts[peer].public_key


def all_up(lab: Lab, w: Watched) -> None:
    w.wait_for("all up", lambda t: all(w.status(key(lab, p)) == "up:ok" for p in lab.peer_names), 20)


def test_hostname_peer_walks_the_schedule_and_heals(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    w = start(lab, tmp_path)
    watched.append(w)
    all_up(lab, w)
    a = key(lab, "a")
    lab.blackhole("a")
    w.wait_for("a waiting", lambda t: w.status(a) in ("down:waiting", "down:checking"), 15)
    w.wait_for("a checking", lambda t: w.status(a) == "down:checking", 15)
    w.wait_for("a backing off", lambda t: w.status(a) == "down:backingoff", 20)
    assert "re-resolving a.lab.test" in w.log()
    assert "endpoint 198.51.100.11:51820 ->" not in w.log()  # DNS gave the same address: nothing applied
    lab.heal("a")
    w.wait_for("a up", lambda t: w.status(a) == "up:ok", 20)


def test_ip_change_with_dns_updated_is_healed(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    w = start(lab, tmp_path)
    watched.append(w)
    all_up(lab, w)
    a = key(lab, "a")
    lab.set_dns("a.lab.test", "198.51.100.21")
    lab.move_underlay("a", "198.51.100.21")
    changed = time.monotonic()
    new = "198.51.100.21:51820"
    text = w.wait_for("a healed at its new address",
                      lambda t: w.status(a) == "up:ok" and lp.peers(t)[a].fields.get("endpoint") == new, 30)
    print(f"healed {time.monotonic() - changed:.1f} s after the IP change")
    assert "endpoint 198.51.100.11:51820 -> 198.51.100.21:51820" in w.log()
    assert lab.endpoint_of("a") == "198.51.100.21:51820"
    assert lp.peers(text)[key(lab, "b")].fields["status"] == "up:ok"


def test_dns_updated_late_backs_off_then_heals(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    w = start(lab, tmp_path)
    watched.append(w)
    all_up(lab, w)
    a = key(lab, "a")
    lab.move_underlay("a", "198.51.100.22")
    w.wait_for("back-off", lambda t: w.status(a) in ("down:backingoff", "down:slowchecking"), 30)
    resolves_before = w.log().count("re-resolving a.lab.test")
    assert resolves_before >= 2
    lab.set_dns("a.lab.test", "198.51.100.22")
    w.wait_for("a up after the DNS update", lambda t: w.status(a) == "up:ok", 30)
    assert "endpoint 198.51.100.11:51820 -> 198.51.100.22:51820" in w.log()


def test_dead_dns_and_nxdomain_stall_nothing(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    b = key(lab, "b")
    w = start(lab, tmp_path, extra=f"[peer:{b}]\nendpoint = nothere.lab.test:51820\n")
    watched.append(w)
    all_up(lab, w)
    lab.blackhole("b")
    w.wait_log("nothere.lab.test: NXDOMAIN", 20)
    lab.blackhole_dns()
    lab.blackhole("a")
    w.wait_log("a.lab.test: DNS timeout", 25)
    # While DNS is dead: cycles on time, no loop stall, and c still tracked.
    c0, t0 = w.cycle(), time.monotonic()
    lags, durations = [], []
    while time.monotonic() - t0 < 6:
        tracker = lp.tracker(w.text())
        lags.append(float(tracker.fields["loop_lag_ms"]))  # type: ignore[arg-type]
        durations.append(float(tracker.fields["cycle_duration_s"]))  # type: ignore[arg-type]
        time.sleep(0.25)
    cycles = w.cycle() - c0
    print(f"{cycles} cycles in 6 s, worst loop lag {max(lags):.1f} ms, worst cycle {max(durations):.2f} s")
    assert cycles >= 5
    assert max(lags) < 250, "the event loop was blocked"
    assert max(durations) < 1.0
    assert w.status(key(lab, "c")) == "up:ok"
    assert w.proc.poll() is None


def test_probes_off_recovers_from_handshake_alone(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    c = key(lab, "c")
    # A fresh peer entry on mon (no handshake yet) with keepalive, while c is unreachable.
    lab.blackhole("c")
    lab.wg("mon", "set", "wg0", "peer", c, "remove")
    lab.wg("mon", "set", "wg0", "peer", c, "allowed-ips", "192.0.2.13/32", "endpoint", "198.51.100.13:51820",
           "persistent-keepalive", "1")
    w = start(lab, tmp_path, extra=f"[peer:{c}]\nhandshake_timeout = 2\n", ping_interval=0)
    watched.append(w)
    w.wait_for("c down from the handshake alone", lambda t: w.status(c) == "down", 25)
    lab.heal("c")
    healed = time.monotonic()
    w.wait_for("c up from a new handshake", lambda t: w.status(c) == "up:ok", 20)
    print(f"up {time.monotonic() - healed:.1f} s after healing, without probes")
    assert "peer-c: down -> up:ok (new handshake)" in w.log()


def test_idle_link_without_keepalive_is_not_down(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    w = start(lab, tmp_path, ping_interval=0, handshake_timeout=1)
    watched.append(w)
    # Handshakes are ~1 s old; past 1 + 0 + 10 s without traffic the link is idle, not down.
    w.wait_for("idle", lambda t: w.status(key(lab, "a")) == "idle" and w.status(key(lab, "b")) == "idle", 25)
    time.sleep(2)
    assert w.status(key(lab, "b")) == "idle"
    assert "-> down" not in w.log()


def test_roamed_peer_is_an_event_and_keeps_its_new_endpoint(lab: Lab, tmp_path: Path,
                                                             watched: list[Watched]) -> None:
    hooks = tmp_path / "hooks.jsonl"
    start_receiver(lab, HOOK_PORT, hooks, tmp_path / "receiver.log")
    w = start(lab, tmp_path, extra=f"[output:webhook]\nurl = http://127.0.0.1:{HOOK_PORT}/hook\n")
    watched.append(w)
    all_up(lab, w)
    lab.move_underlay("a", "198.51.100.23", roam=True)
    assert lab.ping("a", "192.0.2.1")  # a speaks first from its new address: WireGuard roams
    assert lab.endpoint_of("a") == "198.51.100.23:51821"
    a = key(lab, "a")
    text = w.wait_for("the roam counted", lambda t: lp.peers(t)[a].fields.get("roams") == 1, 10)
    assert lp.peers(text)[key(lab, "b")].fields["roams"] == 0
    wait_until("the peer_roamed event", lambda: [e for e in jsonl(hooks) if e["kind"] == "peer_roamed"], 10)
    (event,) = [e for e in jsonl(hooks) if e["kind"] == "peer_roamed"]
    assert event["public_key"] == a and event["friendly_name"] == "peer-a"
    assert event["details"] == {"old_endpoint": "198.51.100.11:51820", "new_endpoint": "198.51.100.23:51821"}
    c = w.cycle()
    w.wait_for("a few cycles", lambda t: w.cycle() >= c + 5, 15)
    assert lab.endpoint_of("a") == "198.51.100.23:51821"  # DNS still says .11: not overridden
    assert w.status(a) == "up:ok"
    assert "re-resolving a.lab.test" not in w.log()
    assert not [e for e in jsonl(hooks) if e["kind"] == "endpoint_changed"]  # re-resolution left it alone
    assert "peer-a: roamed 198.51.100.11:51820 -> 198.51.100.23:51821" in w.log()


def test_check_config_reports_probe_targets_and_hostnames(lab: Lab, tmp_path: Path) -> None:
    ranged = "5UQ3VvDvMWmwAl+PWREg8VpTToXU2vrp9oL8FAPHp0Q="
    lab.wg("mon", "set", "wg0", "peer", ranged, "allowed-ips", "192.0.2.64/26")
    conf = write_config(tmp_path / "c.conf", tmp_path / "x.lp", wg_config_dir=lab.wg_config_dir)
    proc = lab.daemon(conf, "--check-config", stdout=tmp_path / "out")
    assert proc.wait(30) == 0
    report = (tmp_path / "out").read_text()
    assert "wg0/peer-a (" in report and "probe 192.0.2.11; re-resolve a.lab.test:51820" in report
    assert "probe 192.0.2.12; no re-resolution" in report
    assert f"no ICMP probe: only network ranges (192.0.2.64/26); set [peer:{ranged}] ping_target" in report


def test_ipv6_probe_through_the_tunnel(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    c = key(lab, "c")
    w = start(lab, tmp_path, extra=f"[peer:{c}]\nping_target = {lab.hosts['c'].tunnel6}\n")
    watched.append(w)
    text = w.wait_for("c up with an IPv6 probe RTT", lambda t: w.status(c) == "up:ok" and "rtt_ms" in
                      lp.peers(t)[c].fields, 20)
    assert float(lp.peers(text)[c].fields["rtt_ms"]) > 0  # type: ignore[arg-type]
    lab.blackhole("c")
    w.wait_for("c down by IPv6 probes", lambda t: w.status(c) == "down", 20)


def test_status_command_shows_the_schedule(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    status_file = tmp_path / "status.json"
    w = start(lab, tmp_path, extra=f"[output:json]\nfilename = {status_file}\n")
    watched.append(w)
    all_up(lab, w)
    lab.blackhole("a")
    w.wait_for("a checking", lambda t: w.status(key(lab, "a")) in ("down:checking", "down:backingoff"), 20)
    table = subprocess.run([sys.executable, "-m", "wgtrack", "status", "--file", str(status_file)],
                           capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if "peer-a" in x)
    assert "down:" in line and "198.51.100.11:51820" in line
    assert line.split()[-1] != "-"  # when the next re-resolution is due


def test_counters_stay_monotonic_when_the_peer_is_recreated(lab: Lab, tmp_path: Path,
                                                            watched: list[Watched]) -> None:
    """mon forgets peer-b and gets it back (what `wg-quick down; up` or an interface restart does
    to WireGuard's counters: they start from zero), once with a gap wgtrack sees and once within
    one cycle; the exported counters never go down and keep counting."""
    w = start(lab, tmp_path, cycle_time=0.5)
    watched.append(w)
    all_up(lab, w)
    b = key(lab, "b")
    host = lab.hosts["b"]
    readd = ["set", "wg0", "peer", b, "allowed-ips", f"{host.tunnel}/32,{host.tunnel6}/128",
             "endpoint", f"{host.underlay}:51820"]
    history: list[tuple[int, int]] = []

    def counters(text: str) -> tuple[int, int]:
        fields = lp.peers(text)[b].fields
        return int(fields["transfer_rx"]), int(fields["transfer_tx"])  # type: ignore[call-overload]

    for gap in (2.0, 0.0):
        for _ in range(3):
            lab.ping("mon", host.tunnel)
        text = w.wait_for("traffic counted", lambda t: counters(t)[0] > (history[-1][0] if history else 0), 10)
        before = counters(text)
        history.append(before)
        assert lab.wg("mon", "show", "wg0", "transfer").count(b) == 1
        lab.wg("mon", "set", "wg0", "peer", b, "remove")
        time.sleep(gap)
        lab.wg("mon", *readd)
        raw = int(next(line.split("\t")[1] for line in lab.wg("mon", "show", "wg0", "transfer").splitlines()
                       if line.startswith(b)))
        assert raw < before[0]  # WireGuard's own counter did start again
        lab.ping("mon", host.tunnel)  # the link comes back (handshake) and counts again
        floor = before[0]

        def counting_again(text: str, floor: int = floor) -> bool:
            return w.status(b) == "up:ok" and counters(text)[0] > floor

        text = w.wait_for("b up again", counting_again, 20)
        history.append(counters(text))
    assert all(x <= y for x, y in zip([h[0] for h in history], [h[0] for h in history][1:], strict=False))
    assert all(x <= y for x, y in zip([h[1] for h in history], [h[1] for h in history][1:], strict=False))


def test_underlay_diagnosis_tells_tunnel_only_from_host_unreachable(lab: Lab, tmp_path: Path,
                                                                   watched: list[Watched]) -> None:
    w = start(lab, tmp_path, underlay_probe="yes")
    watched.append(w)
    all_up(lab, w)
    b, c = key(lab, "b"), key(lab, "c")
    lab.blackhole("b")  # WireGuard's UDP port dropped; the host still answers ICMP
    lab.exec("c", "ip", "link", "set", "eth0", "down")  # the whole host gone
    text = w.wait_for("both diagnosed", lambda t: lp.peers(t)[b].fields.get("diagnosis") == "tunnel_only"
                      and lp.peers(t)[c].fields.get("diagnosis") == "host_unreachable", 30)
    assert lp.peers(text)[b].fields["status"] == "down" and lp.peers(text)[c].fields["status"] == "down"
    assert "diagnosis" not in lp.peers(text)[key(lab, "a")].fields  # up: nothing to diagnose
    assert "peer-b: likely cause tunnel_only" in w.log() and "peer-c: likely cause host_unreachable" in w.log()
    lab.heal("b")
    text = w.wait_for("b up, diagnosis gone", lambda t: w.status(b) == "up:ok"
                      and "diagnosis" not in lp.peers(t)[b].fields, 20)
    assert w.log().count("likely cause") == 2  # once per peer: no log line per probe


def serve_in(lab: Lab, host: str, *argv: str) -> None:
    """A service in ``host``'s namespace, on its tunnel address; the lab stops it."""
    lab.procs.append(subprocess.Popen(["ip", "netns", "exec", lab.hosts[host].ns, *argv],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def nft(lab: Lab, host: str, rules: str) -> None:
    run("ip", "netns", "exec", lab.hosts[host].ns, "nft", "-f", "-", input=rules)


def test_service_checks_through_the_tunnel(lab: Lab, tmp_path: Path, watched: list[Watched]) -> None:
    a, b, c = (key(lab, p) for p in ("a", "b", "c"))
    listener = ("import socket,time; s=socket.socket(); s.bind(('192.0.2.12', 2222)); s.listen(); "
                "[s.accept()[0].close() for _ in range(100000)]")
    serve_in(lab, "b", sys.executable, "-c", listener)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("ok\n")
    serve_in(lab, "c", sys.executable, "-m", "http.server", "8080", "--bind", "192.0.2.13",
             "--directory", str(tmp_path / "www"))
    serve_in(lab, "a", "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
             "--listen-address=192.0.2.11", "--address=/www.lab.test/192.0.2.99", "--user=root",
             f"--pid-file={tmp_path / 'dnsmasq-a.pid'}")
    # c drops ICMP inside its tunnel: only its web service can vouch for it
    nft(lab, "c", f"table inet {lab.prefix[:-1]}icmp {{\n chain i {{ type filter hook input priority 0; "
        "iifname wg0 icmp type echo-request drop; }\n}\n")
    status_file = tmp_path / "status.json"
    extra = (f"[output:json]\nfilename = {status_file}\n"
             f"[peer:{a}]\ncheck = dns://www.lab.test@192.0.2.11\n"
             f"[peer:{b}]\ncheck = tcp://192.0.2.12:2222\nicmp = no\n"
             f"[peer:{c}]\ncheck = http://192.0.2.13:8080/health, http://192.0.2.13:8080/missing\n")
    w = start(lab, tmp_path, extra=extra, check_timeout=0.5)
    watched.append(w)

    def checks() -> dict[str, dict[str, dict[str, object]]]:
        try:
            doc = json.loads(status_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {p["public_key"]: {r["check"]: r for r in p.get("checks", [])}
                for i in doc["interfaces"] for p in i["peers"]}

    w.wait_for("all up", lambda t: all(w.status(k) == "up:ok" for k in (a, b, c)), 30)
    wait_until("every check ran", lambda: len(checks().get(c, {})) == 2 and checks().get(a) and checks().get(b), 10)
    seen = checks()
    assert seen[a]["dns://www.lab.test.@192.0.2.11"]["ok"] is True
    assert seen[b]["tcp://192.0.2.12:2222"]["ok"] is True
    assert seen[c]["http://192.0.2.13:8080/health"]["ok"] is True
    assert seen[c]["http://192.0.2.13:8080/missing"] == {"check": "http://192.0.2.13:8080/missing", "ok": False,
                                                         "rtt_ms": None, "error": "HTTP 404, wanted 2xx"}
    metrics_text = w.text()
    assert 'wgtrack_check,check=tcp://192.0.2.12:2222' in metrics_text
    # b's only evidence is its service: blocking the port takes it down; c stays up without ICMP
    nft(lab, "b", f"table inet {lab.prefix[:-1]}tcp {{\n chain i {{ type filter hook input priority 0; "
        "tcp dport 2222 drop; }\n}\n")
    w.wait_for("b down by its check", lambda t: w.status(b) == "down", 20)
    assert "no answer within 0.5 s" in str(checks()[b]["tcp://192.0.2.12:2222"]["error"])
    c_cycle = w.cycle()
    w.wait_for("some cycles", lambda t: w.cycle() >= c_cycle + 3, 10)
    assert w.status(c) == "up:ok" and w.status(a) == "up:ok"
    assert "probe target 192.0.2.13 is silent" not in w.log()  # the web check answers for c


def test_break_and_heal_reported_within_seconds_at_a_30_s_cycle(lab: Lab, tmp_path: Path,
                                                                watched: list[Watched]) -> None:
    """0.2.0's cycle_time = 30 with probe_interval = 1: probes run on their own clock, the down
    peer is probed every second (the fast lane), and a change is published at once, to the file
    and to a webhook, not at the next cycle."""
    hooks = tmp_path / "hooks.jsonl"
    start_receiver(lab, HOOK_PORT, hooks, tmp_path / "receiver.log")
    w = start(lab, tmp_path, extra=f"[output:webhook]\nurl = http://127.0.0.1:{HOOK_PORT}/hook\n",
              cycle_time=30, probe_interval=1)
    watched.append(w)
    all_up(lab, w)
    b = key(lab, "b")
    lab.blackhole("b")
    broke = time.monotonic()
    w.wait_for("b down between cycles", lambda t: w.status(b) == "down", 15)
    detected = time.monotonic() - broke
    lab.heal("b")
    healed = time.time()
    seen_file = seen_hook = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (seen_file is None or seen_hook is None):  # 0.05 s polls, bounded
        if seen_file is None and w.status(b) == "up:ok":
            seen_file = time.time()
        ups = [e for e in jsonl(hooks) if e["kind"] == "peer_up" and e["public_key"] == b]
        if seen_hook is None and ups:
            seen_hook, decided = time.time(), float(ups[-1]["time"])  # type: ignore[arg-type]
        time.sleep(0.05)
    assert seen_file is not None and seen_hook is not None, w.log()[-2000:]
    print(f"cycle 30 s: down in the file {detected:.2f} s after the break; up {seen_file - healed:.2f} s "
          f"after the heal; webhook {seen_hook - decided:.2f} s after the decision")
    assert detected <= 5.0
    assert seen_file - healed <= 3.0
    assert seen_hook - decided <= 1.0 and seen_file - decided <= 1.0
    assert w.cycle() <= 2  # it was not a cycle that saw it
