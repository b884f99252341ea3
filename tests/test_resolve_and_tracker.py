"""Edges of re-resolution: the hosts file comes first, eligibility and opt-out, handshake targets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wgtrack import config
from wgtrack.model import PeerRecord
from wgtrack.resolve import Resolver, parse_hosts
from wgtrack.tracker import Tracker, handshake_target, probe_target
from wgtrack.wgconf import PeerConf

KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
OTHER = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="


def test_parse_hosts() -> None:
    text = ("127.0.0.1 localhost\n198.51.100.7 peer.example.test peer # comment\n"
            "fd00::7 PEER.example.test.\n#198.51.100.8 peer.example.test\n")
    assert parse_hosts(text, "peer.example.test") == ("198.51.100.7", "fd00::7")
    assert parse_hosts(text, "nothere.test") == ()


def test_hosts_file_is_used_before_dns(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("198.51.100.7 peer.example.test\n")
    result = asyncio.run(Resolver(hosts, 0.5).resolve("peer.example.test"))
    assert result.addresses == ("198.51.100.7",) and result.error is None


def record(allowed: tuple[str, ...]) -> PeerRecord:
    return PeerRecord("wg0", KEY, "198.51.100.9:51820", allowed, 0, 0, 0, 0)


def test_probe_and_handshake_targets() -> None:
    assert probe_target(record(("192.0.2.0/24", "192.0.2.9/32")), None) == "192.0.2.9"
    assert probe_target(record(("192.0.2.0/24",)), None) is None  # a network address is never pinged
    assert probe_target(record(("192.0.2.0/24",)), "192.0.2.1") == "192.0.2.1"
    assert handshake_target(record(("192.0.2.64/26",)), None) == "192.0.2.65"
    assert handshake_target(record(("0.0.0.0/0",)), None) is None
    assert handshake_target(record(("fd00::7/128",)), None) == "fd00::7"


def test_reresolve_sources_and_opt_out() -> None:
    cfg = config.parse(f"[peer:{OTHER}]\nendpoint = own.example.test:4500\n"
                       f"[interface:wg1]\nreresolve = no\n")
    tracker = Tracker(cfg)
    tracker.set_interface_conf("wg0", {KEY: PeerConf(KEY, "conf.example.test", 51820)})
    tracker.set_interface_conf("wg1", {KEY: PeerConf(KEY, "conf.example.test", 51820)})
    assert tracker.reresolve_source(("wg0", KEY)) == ("conf.example.test", 51820)
    assert tracker.reresolve_source(("wg1", KEY)) is None  # opted out for the interface
    assert tracker.reresolve_source(("wg0", OTHER)) == ("own.example.test", 4500)  # from wgtrack's own config
    numeric = Tracker(config.parse(""))
    numeric.set_interface_conf("wg0", {KEY: PeerConf(KEY)})
    assert numeric.reresolve_source(("wg0", KEY)) is None


def test_endpoint_setting_must_be_a_hostname() -> None:
    with pytest.raises(config.ConfigError, match="names an address"):
        config.parse(f"[peer:{KEY}]\nendpoint = 198.51.100.7:51820\n")
