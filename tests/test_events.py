"""Events from the tracker: kinds, keys, evidence, and the documented JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.test_dump import DATA
from wgtrack import config, link
from wgtrack.dump import parse_dump
from wgtrack.events import KINDS
from wgtrack.snapshot import CycleFacts
from wgtrack.tracker import Tracker
from wgtrack.wgconf import PeerConf

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "events.schema.json").read_text())
KEY = "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="  # a peer in lab-mixed.dump


@pytest.fixture
def tracker() -> Tracker:
    cfg = config.parse("[general]\nping_interval = 1\n")
    t = Tracker(cfg)
    t.set_interface_conf("wg0", {KEY: PeerConf(KEY, "alice.example.test", 51820, friendly_name="alice")})
    return t


def test_lifecycle_events_validate_against_the_schema(tracker: Tracker) -> None:
    dump = parse_dump((DATA / "lab-mixed.dump").read_text())
    tracker.events.tracker_event("tracker_started", 1_800_000_000.0, "wgtrack started")
    tracker.observe_dump(dump, 10.0, 1_800_000_000.0)
    pid = ("wg0", KEY)
    tracker.observe(pid, link.ProbeResult(ok=True, rtt_ms=1.0), 10.2)  # the target answers: probes decide
    for _ in range(2):
        tracker.observe(pid, link.ProbeResult(ok=False, reason="no reply"), 10.5)
    tracker.observe(pid, link.ResolveResult(error="NXDOMAIN"), 10.6)
    tracker.observe(pid, link.ResolveResult(("198.51.100.99",)), 10.7)
    tracker.observe(pid, link.SetEndpointResult("198.51.100.99:51820", ok=True), 10.8)
    tracker.observe(pid, link.ProbeResult(ok=True, rtt_ms=1.0), 10.9)
    without_wg1 = parse_dump("\n".join(x for x in (DATA / "lab-mixed.dump").read_text().splitlines()
                                       if not x.startswith("wg1\t") and KEY not in x))
    tracker.observe_dump(without_wg1, 20.0, 1_800_000_010.0)
    tracker.observe_dump(dump, 30.0, 1_800_000_020.0)  # alice and wg1 are back
    events = tracker.events.drain()
    kinds = [e.kind for e in events]
    # An interface comes and goes with its peers in one event; one by one only on a tracked one.
    on_wg1 = sum(len(i.peers) for i in dump.interfaces if i.name == "wg1")
    on_wg0 = sum(len(i.peers) for i in dump.interfaces if i.name == "wg0")
    assert [(e.kind, e.interface, e.details) for e in events if e.kind.startswith("interface_")] == [
        ("interface_up", "wg0", {"peers": on_wg0}), ("interface_up", "wg1", {"peers": on_wg1}),
        ("interface_down", "wg1", {"peers": on_wg1}), ("interface_up", "wg1", {"peers": on_wg1})]
    assert [(e.kind, e.public_key) for e in events if e.kind in ("peer_added", "peer_removed")] == [
        ("peer_removed", KEY), ("peer_added", KEY)]
    for kind in ("tracker_started", "interface_up", "peer_added", "peer_down", "reresolve_failed",
                 "endpoint_changed", "peer_up", "peer_removed", "interface_down"):
        assert kind in kinds
    assert set(kinds) <= set(KINDS)
    for event in events:
        jsonschema.validate(event.to_dict(), SCHEMA)
    down = next(e for e in events if e.kind == "peer_down" and e.public_key == KEY)
    assert (down.interface, down.public_key, down.friendly_name) == ("wg0", KEY, "alice")
    assert down.evidence["probe_failures"] == 2 and "handshake_age_s" in down.evidence
    assert down.message.startswith("wg0/alice: down")
    changed = next(e for e in events if e.kind == "endpoint_changed")
    assert changed.details == {"old_endpoint": "198.51.100.11:51820", "new_endpoint": "198.51.100.99:51820"}
    assert tracker.events.drain() == ()  # drained


def test_snapshot_carries_the_events(tracker: Tracker) -> None:
    tracker.observe_dump(parse_dump((DATA / "lab-mixed.dump").read_text()), 1.0, 1_800_000_000.0)
    snap = tracker.snapshot(1.0, CycleFacts(time_ns=1, cycle=1, wg_error=None, cycle_duration_s=0.0, started_ns=0))
    # qBOW… has keepalive and a months-old handshake: down from its first sample, and said so.
    assert {e.kind for e in snap.events} == {"interface_up", "peer_down"}  # its peers came with the interface
    assert tracker.snapshot(2.0, CycleFacts(time_ns=2, cycle=2, wg_error=None, cycle_duration_s=0.0,
                                            started_ns=0)).events == ()


def test_events_of_one_dump_share_what_is_alike_and_hand_out_copies(tracker: Tracker) -> None:
    # Peers added to a tracked interface make an event each: alike evidence is one dict
    # (memory), and no reader of one event's dict can change another's.
    text = (DATA / "lab-mixed.dump").read_text()
    tracker.observe_dump(parse_dump("\n".join(x for x in text.splitlines() if x.count("\t") == 4)), 1.0,
                         1_800_000_000.0)  # the interfaces alone
    tracker.observe_dump(parse_dump(text), 2.0, 1_800_000_001.0)
    added = [e for e in tracker.events.drain() if e.kind == "peer_added"]
    never = [e for e in added if e.evidence["handshake_age_s"] is None]
    assert len(never) >= 2 and all(e.evidence is never[0].evidence for e in never)
    shown = never[0].to_dict()
    shown["evidence"]["probe_failures"] = 99
    shown["details"]["x"] = 1
    assert never[1].to_dict()["evidence"]["probe_failures"] == 0 and never[1].details == {}


def test_a_lossy_link_is_degraded_through_the_tracker_and_says_so_by_the_schema(tracker: Tracker) -> None:
    """The probes' echoes, recorded as the daemon records them, reach the machine as the window's
    figures: 20 % loss for two minutes and more makes one peer_degraded (cause, loss, echoes);
    a down and up again measures the link afresh (its window starts over)."""
    tracker.observe_dump(parse_dump((DATA / "lab-mixed.dump").read_text()), 10.0, 1_800_000_000.0)
    pid = ("wg0", KEY)
    tracker.events.drain()
    for second in range(150):  # a probe of 10 echoes a second, 8 answered
        ping = link.ProbeResult(ok=True, rtt_ms=1.0, sent=10, rtts=(1.0,) * 8)
        tracker.record_probe(pid, ping, 11.0 + second, 1_800_000_001.0 + second)
        tracker.observe(pid, ping, 11.0 + second)
    events = [e for e in tracker.events.drain() if e.public_key == KEY]
    assert [(e.kind, e.old_state, e.new_state) for e in events] == [("peer_degraded", "up:ok", "up:degraded")]
    degraded = events[0]
    jsonschema.validate(degraded.to_dict(), SCHEMA)
    assert degraded.details["cause"] == "loss" and degraded.details["loss"] == 0.2
    assert degraded.details["echoes"] == 450 and degraded.message.startswith("wg0/alice: degraded (loss 20.0%")
    state = tracker.state_of(pid)
    assert state is not None and state.status is link.Status.DEGRADED and tracker.is_up(pid)
    for _ in range(2):
        tracker.observe(pid, link.ProbeResult(ok=False, reason="no reply", sent=9), 170.0)
    tracker.observe(pid, link.ProbeResult(ok=True, rtt_ms=1.0, sent=1, rtts=(1.0,)), 171.0)
    assert [e.kind for e in tracker.events.drain() if e.public_key == KEY] == ["peer_down", "peer_up"]
    quality = tracker._peers[pid].quality
    assert quality is not None and quality.summary(1_800_000_200.0).window_probes == 0  # measured afresh
