"""Edges of re-resolution: the hosts file comes first, eligibility and opt-out, handshake targets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wgtrack import config
from wgtrack import peers as tracker_module
from wgtrack.model import Dump, InterfaceRecord, PeerRecord
from wgtrack.peers import handshake_target, probe_target
from wgtrack.resolve import Resolver, parse_hosts
from wgtrack.snapshot import CycleFacts
from wgtrack.tracker import Tracker
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


def _dump(*peers: tuple[str, int, int]) -> Dump:
    records = tuple(PeerRecord("wg0", key, "198.51.100.9:51820", ("192.0.2.9/32",), 0, rx, tx, 0)
                    for key, rx, tx in peers)
    return Dump((InterfaceRecord("wg0", "I" * 43 + "=", 51820, None, records),))


def _exported(tracker: Tracker, key: str, now: float) -> tuple[int, int]:
    snap = tracker.snapshot(now, CycleFacts(time_ns=int(now * 1e9), cycle=1, wg_error=None, cycle_duration_s=0.0,
                                            started_ns=0))
    (peer,) = [p for i in snap.interfaces for p in i.peers if p.public_key == key]
    return peer.rx_bytes, peer.tx_bytes


def test_exported_counters_never_go_down_across_resets_and_re_adds() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    a, b = "A" * 43 + "=", "B" * 43 + "="
    seen = []
    steps = [((a, 1000, 10), (b, 7, 7)), ((a, 5000, 20), (b, 8, 8)),
             ((a, 200, 5), (b, 9, 9)),  # the interface restarted between two dumps: a's counters reset
             ((a, 300, 6), (b, 10, 10)),
             ((b, 11, 11),),  # a is gone (wg-quick down/up seen mid-way) ...
             ((a, 50, 1), (b, 12, 12)),  # ... and back from zero
             ((a, 60, 2), (b, 13, 13))]
    for i, peers in enumerate(steps):
        tracker.observe_dump(_dump(*peers), float(i), 1_800_000_000.0 + i)
        if any(key == a for key, _, _ in peers):
            seen.append(_exported(tracker, a, float(i)))
    assert seen == [(1000, 10), (5000, 20), (5200, 25), (5300, 26), (5350, 27), (5360, 28)]
    assert _exported(tracker, b, 6.0) == (13, 13)  # never reset: untouched


def test_carried_counters_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "CARRIED_MAX", 3)
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    keys = [f"{c * 43}=" for c in "ABCDEF"]
    tracker.observe_dump(_dump(*[(k, 100, 100) for k in keys]), 0.0, 1_800_000_000.0)
    tracker.observe_dump(_dump(), 1.0, 1_800_000_001.0)  # all six gone: only three remembered
    tracker.observe_dump(_dump(*[(k, 1, 1) for k in keys]), 2.0, 1_800_000_002.0)
    assert [_exported(tracker, k, 2.0)[0] for k in keys] == [1, 1, 1, 101, 101, 101]
    tracker.observe_dump(_dump(), 3.0, 1_800_000_003.0)
    later = 3.0 + tracker_module.CARRIED_S + 1
    tracker.observe_dump(_dump((keys[-1], 1, 1)), later, 1_800_000_000.0 + later)
    assert _exported(tracker, keys[-1], later)[0] == 1  # remembered, but more than a day ago: forgotten


def _interface(tracker: Tracker, now: float):  # type: ignore[no-untyped-def]
    snap = tracker.snapshot(now, CycleFacts(time_ns=int(now * 1e9), cycle=1, wg_error=None, cycle_duration_s=0.0,
                                            started_ns=0))
    return snap.interfaces[0]


def test_totals_per_interface_and_group_never_go_down_as_peers_come_and_go() -> None:
    a, b, c = "A" * 43 + "=", "B" * 43 + "=", "C" * 43 + "="
    tracker = Tracker(config.parse(f"[general]\nping_interval = 0\n[peer:{c}]\nper_peer_metrics = no\n"))
    tracker.set_interface_conf("wg0", {a: PeerConf(a, friendly_json={"site": "x"}),
                                       c: PeerConf(c, friendly_json={"site": "x"})})
    steps = [((a, 100, 1), (b, 10, 1), (c, 1000, 1)),
             ((a, 150, 2), (b, 20, 2), (c, 1100, 2)),
             ((b, 30, 3), (c, 1200, 3)),  # a went away: its 150 stay in
             ((a, 160, 4), (b, 40, 4), (c, 1300, 4)),  # a is back with its counters carried
             ((a, 170, 5), (b, 50, 5))]  # c went away
    seen, exported = [], []
    for i, peers in enumerate(steps):
        tracker.observe_dump(_dump(*peers), float(i), 1_800_000_000.0 + i)
        iface = _interface(tracker, float(i))
        whole, site = iface.totals
        seen.append((whole.rx_bytes, site.labels, site.rx_bytes, dict(whole.states)["idle"]))
        exported.append([p.exported for p in iface.peers])
    assert seen == [(1110, (("site", "x"),), 1100, 3), (1270, (("site", "x"),), 1250, 3),
                    (1380, (("site", "x"),), 1350, 2), (1500, (("site", "x"),), 1460, 3),
                    (1520, (("site", "x"),), 1470, 2)]
    # c has per_peer_metrics = no: counted in the totals above, not exported on its own
    assert exported[0] == [True, True, False] and exported[-1] == [True, True]


def test_per_peer_metrics_no_leaves_only_totals_in_the_outputs() -> None:
    from wgtrack.lineproto import render
    from wgtrack.promtext import render as prom

    a, b = "A" * 43 + "=", "B" * 43 + "="
    tracker = Tracker(config.parse(f"[general]\nping_interval = 0\nper_peer_metrics = no\n[peer:{a}]\n"
                                   "per_peer_metrics = yes\n"))
    tracker.observe_dump(_dump((a, 100, 1), (b, 10, 1)), 0.0, 1_800_000_000.0)
    snap = tracker.snapshot(0.0, CycleFacts(time_ns=1_800_000_000 * 10**9, cycle=1, wg_error=None,
                                            cycle_duration_s=0.0, started_ns=0))
    text, exposition = render(snap), prom(snap)
    assert a.replace("=", "\\=") in text and b.replace("=", "\\=") not in text
    assert "transfer_rx=110i" in text.splitlines()[-2]  # the interface line counts both
    assert f'public_key="{a}"' in exposition and f'public_key="{b}"' not in exposition
    assert 'wgtrack_interface_received_bytes_total{interface="wg0"} 110' in exposition
    assert 'wgtrack_interface_peers{interface="wg0",state="idle"} 2' in exposition
