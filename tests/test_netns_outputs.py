"""Outputs of a peer in another network namespace: a ``netns`` tag or label beside
``interface`` (the interface's own name there); a peer of wgtrack's own namespace gets none, so
0.2.0's series are unchanged by default."""

from __future__ import annotations

import dataclasses
import json

from tests.snapshots import KEY_A, KEY_B, T_NS, peer
from wgtrack import lineproto, promtext
from wgtrack.events import Event
from wgtrack.outputs.json_status import status_document
from wgtrack.snapshot import InterfaceView, Snapshot


def two_namespaces() -> Snapshot:
    own = InterfaceView("wg0", KEY_B, 51820, (peer(KEY_A),))
    other = InterfaceView("blue/wg0", KEY_A, 51820, (peer(KEY_B, interface="blue/wg0"),))
    return Snapshot(time_ns=T_NS, cycle=7, wg_ok=True, wg_error=None, interfaces=(own, other),
                    cycle_duration_s=0.5, started_ns=T_NS - 60_000_000_000)


def test_prometheus_labels() -> None:
    text = "".join(promtext.render_chunks(two_namespaces(), promtext.LabelCache()))
    blue = [line for line in text.splitlines() if 'netns="blue"' in line]
    own = [line for line in text.splitlines() if line.startswith(("wireguard_", "wgtrack_")) and "netns" not in line]
    assert any(line.startswith('wireguard_latest_handshake_seconds{netns="blue",interface="wg0",') for line in blue)
    assert 'wgtrack_interface_up{netns="blue",interface="wg0"} 1' in blue
    assert 'wgtrack_interface_up{interface="wg0"} 1' in own
    assert not any("blue/" in line for line in text.splitlines())  # never the internal name
    assert any(line.startswith('wireguard_latest_handshake_seconds{interface="wg0",') for line in own)


def test_line_protocol_tags() -> None:
    lines = lineproto.render(two_namespaces()).splitlines()
    assert any(line.startswith(f"wgtrack,friendly_name=alice,interface=wg0,netns=blue,peer={KEY_B[:-1]}")
               for line in lines), lines
    assert any(line.startswith(f"wgtrack,friendly_name=alice,interface=wg0,peer={KEY_A[:-1]}") for line in lines)
    assert any(line.startswith("wgtrack_interface,interface=wg0,netns=blue ") for line in lines)


def test_status_file_and_events() -> None:
    doc = status_document(two_namespaces())
    assert [(i["name"], i.get("netns")) for i in doc["interfaces"]] == [("wg0", None), ("blue/wg0", "blue")]
    event = Event(kind="peer_down", time=1.0, message="down", interface="blue/wg0", public_key=KEY_B)
    said = event.to_dict()
    assert (said["netns"], said["interface"]) == ("blue", "wg0")
    own = dataclasses.replace(event, interface="wg0").to_dict()
    assert "netns" not in own and own["interface"] == "wg0"
    json.dumps(said)
