"""The real daemon against real WireGuard (wireguard-go in network namespaces) and dnsmasq."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import Watched, write_config
from tests.lab import Lab, run

pytestmark = pytest.mark.lab


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[Watched]:
    out = tmp_path / "wgtrack.lp"
    conf = write_config(tmp_path / "wgtrack.conf", out, cycle_time=1, ping_interval=1, ping_failafternum=2,
                        ping_timeout=0.5, wg_config_dir=lab.wg_config_dir, loglevel="debug")
    log = tmp_path / "log"
    watched = Watched(lab.daemon(conf, stderr=log), out, log)
    yield watched
    if watched.proc.poll() is None:
        watched.stop()


def key(lab: Lab, peer: str) -> str:
    return lab.hosts[peer].public_key


def test_links_up_are_reported_up_with_names(lab: Lab, daemon: Watched) -> None:
    keys = [key(lab, p) for p in lab.peer_names]
    text = daemon.wait_for("all up", lambda t: all(daemon.status(k) == "up:ok" for k in keys), 20)
    peers = lp.peers(text)
    assert peers[key(lab, "a")].tags["friendly_name"] == "peer-a"
    assert peers[key(lab, "b")].fields["endpoint"] == "198.51.100.12:51820"
    assert peers[key(lab, "b")].fields["is_up"] == 1
    assert isinstance(peers[key(lab, "b")].fields["rtt_ms"], float)


def test_blackholed_link_goes_down_and_heals(lab: Lab, daemon: Watched) -> None:
    b = key(lab, "b")
    daemon.wait_for("b up", lambda t: daemon.status(b) == "up:ok", 20)
    lab.blackhole("b")
    broke = time.monotonic()
    daemon.wait_for("b down", lambda t: daemon.status(b) == "down", 20)
    detected = time.monotonic() - broke
    assert daemon.status(key(lab, "a")) == "up:ok"  # the others keep being tracked
    lab.heal("b")
    healed = time.monotonic()
    daemon.wait_for("b up again", lambda t: daemon.status(b) == "up:ok", 20)
    print(f"detected down in {detected:.1f} s, up again {time.monotonic() - healed:.1f} s after healing")
    assert "peer-b: up:ok -> down" in daemon.log() and "peer-b: down -> up:ok" in daemon.log()


def test_runtime_peer_added_and_removed(lab: Lab, daemon: Watched) -> None:
    daemon.wait_for("first cycle", lambda t: key(lab, "a") in lp.peers(t), 20)
    new = run("wg", "pubkey", input=run("wg", "genkey")).strip()
    lab.wg("mon", "set", "wg0", "peer", new, "allowed-ips", "192.0.2.99/32")
    daemon.wait_for("new peer", lambda t: new in lp.peers(t), 10)
    lab.wg("mon", "set", "wg0", "peer", new, "remove")
    daemon.wait_for("peer gone", lambda t: new not in lp.peers(t), 10)


def test_vanished_interface_leaves_the_output(lab: Lab, daemon: Watched) -> None:
    proc = lab.add_interface("wg1")
    daemon.wait_for("wg1 present", lambda t: "interface=wg1" in t, 10)
    lab._stop(proc)
    text = daemon.wait_for("wg1 gone", lambda t: "interface=wg1" not in t, 10)
    assert "interface=wg0" in text


def test_reload_good_and_broken_then_sigterm(lab: Lab, daemon: Watched, tmp_path: Path) -> None:
    b = key(lab, "b")
    daemon.wait_for("b up", lambda t: daemon.status(b) == "up:ok", 20)
    conf = tmp_path / "wgtrack.conf"
    original = conf.read_text()
    conf.write_text(original.replace("[general]", "[general]\nbogus_key = 1"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reload refused")
    assert "[general] bogus_key = '1': unknown key" in daemon.log()
    conf.write_text(original.replace("cycle_time = 1", "cycle_time = 2"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("cycle 2 s")
    c = daemon.cycle()
    daemon.wait_for("cycles after reload", lambda t: daemon.cycle() >= c + 2, 10)
    assert daemon.status(b) == "up:ok"
    assert daemon.log().count("peer-b: now tracked") == 1  # state survived the reload
    rc, took = daemon.stop(signal.SIGTERM)
    assert rc == 0 and took < 5
    assert daemon.log().count("received SIGTERM, stopped cleanly") == 1


def test_no_private_key_in_output_or_log(lab: Lab, daemon: Watched) -> None:
    daemon.wait_for("a few cycles", lambda t: daemon.cycle() >= 3, 20)
    lab.blackhole("c")
    daemon.wait_for("c down", lambda t: daemon.status(key(lab, "c")) == "down", 20)
    daemon.stop()
    privates = [h.private_key_file.read_text().strip() for h in lab.hosts.values()]
    for private in privates:
        body = private.rstrip("=")
        assert body not in daemon.text()
        assert body not in daemon.log()
