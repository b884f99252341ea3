"""Alertmanager: the output's payloads against a loopback receiver, then the real Debian
``prometheus-alertmanager`` routing a real link break and heal to a webhook receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import start_in_lab
from tests.lab import Lab, wait_until
from tests.receiver import Receiver
from tests.servers import alertmanager_setup
from tests.snapshots import KEY_A, KEY_B, T_NS, peer, snapshot
from wgtrack.link import Status
from wgtrack.outputs.alertmanager import Alertmanager, AlertmanagerSettings
from wgtrack.snapshot import Snapshot


def test_firing_resend_and_resolve_payloads() -> None:
    receiver = Receiver()
    am = Alertmanager("output:alertmanager", AlertmanagerSettings(url=f"http://127.0.0.1:{receiver.port}",
                                                                 resend_interval_s=30, instance="vpn1"))
    down = peer(KEY_B, friendly_name="bob", status=Status.CHECKING, since=T_NS / 1e9 - 12.0)
    up = peer(KEY_B, friendly_name="bob")
    base = snapshot(peer(), down)

    def at(snap: Snapshot, seconds: float) -> Snapshot:
        return dataclasses.replace(snap, time_ns=base.time_ns + int(seconds * 1e9))

    async def go() -> None:
        await am.start()
        await am.publish(base)
        await asyncio.to_thread(receiver.wait_for, 1)
        await am.publish(at(base, 10))  # not due yet: nothing sent
        await asyncio.sleep(0.3)
        await am.publish(at(base, 31))  # due: re-sent while firing
        await asyncio.to_thread(receiver.wait_for, 2)
        await am.publish(at(snapshot(peer(), up), 40))  # recovered: resolved
        await asyncio.to_thread(receiver.wait_for, 3)
        await am.close()

    try:
        asyncio.run(go())
    finally:
        receiver.close()
    first, again, resolved = receiver.bodies()
    assert len(first) == 1 and first[0]["labels"] == {
        "alertname": "WireGuardPeerDown", "interface": "wg0", "peer": KEY_B, "friendly_name": "bob",
        "instance": "vpn1", "severity": "critical"}
    assert "bob" in first[0]["annotations"]["summary"]
    assert again[0]["labels"] == first[0]["labels"] and again[0]["startsAt"] == first[0]["startsAt"]
    assert resolved[0]["labels"]["peer"] == KEY_B and resolved[0]["endsAt"] < again[0]["endsAt"]
    assert all(a["labels"]["peer"] != KEY_A for body in receiver.bodies() for a in body)


@pytest.mark.lab
@pytest.mark.server
def test_real_alertmanager_gets_break_and_heal(lab: Lab, tmp_path: Path) -> None:
    hook_port, am_port = 9095, 9093  # inside mon's own network namespace
    received = tmp_path / "received.jsonl"
    binary, am_conf = alertmanager_setup(lab, tmp_path, hook_port, received)
    lab.spawn_in_mon([binary, f"--config.file={am_conf}", f"--storage.path={tmp_path / 'am'}",
                      f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                     stderr=tmp_path / "alertmanager.log")
    wait_until("alertmanager ready", lambda: _ready(lab, am_port), 30, interval=0.5)
    daemon = start_in_lab(lab, tmp_path, f"[output:alertmanager]\nurl = http://127.0.0.1:{am_port}\n"
                          "instance = lab-mon\nresend_interval = 5\n", cycle_time=1, ping_interval=1, ping_timeout=0.5)
    b = lab.hosts["b"].public_key
    daemon.wait_for("b up", lambda t: daemon.status(b) == "up:ok", 20)
    lab.blackhole("b")

    def notifications(status: str) -> list[dict[str, object]]:
        docs = [json.loads(line) for line in received.read_text().splitlines() if line.strip()]
        return [a for d in docs if d["status"] == status for a in d["alerts"] if a["labels"]["peer"] == b]

    wait_until("firing notification for b", lambda: notifications("firing"), 40, interval=0.5)
    firing = notifications("firing")[0]["labels"]
    assert firing["alertname"] == "WireGuardPeerDown" and firing["friendly_name"] == "peer-b"  # type: ignore[index]
    assert firing["instance"] == "lab-mon"  # type: ignore[index]
    healed = time.monotonic()
    lab.heal("b")
    wait_until("resolved notification for b", lambda: notifications("resolved"), 40, interval=0.5)
    print(f"resolved notification {time.monotonic() - healed:.1f} s after the heal")


def _ready(lab: Lab, port: int) -> bool:
    try:
        lab.http_get("mon", f"http://127.0.0.1:{port}/-/ready", timeout=3)
    except RuntimeError:  # not listening yet (the GET inside the namespace failed)
        return False
    return True


def test_a_degraded_peer_fires_its_own_alert_and_going_down_swaps_it() -> None:
    receiver = Receiver()
    am = Alertmanager("output:alertmanager", AlertmanagerSettings(url=f"http://127.0.0.1:{receiver.port}",
                                                                 resend_interval_s=30, instance="vpn1"))
    degraded = peer(KEY_B, friendly_name="bob", status=Status.DEGRADED, degraded="mtu", path_mtu=1144)
    down = peer(KEY_B, friendly_name="bob", status=Status.CHECKING)
    base = snapshot(peer(), degraded)

    async def go() -> None:
        await am.start()
        await am.publish(base)
        await asyncio.to_thread(receiver.wait_for, 1)
        await am.publish(dataclasses.replace(snapshot(peer(), down), time_ns=base.time_ns + 5 * 10**9))
        await asyncio.to_thread(receiver.wait_for, 2)
        await am.close()

    try:
        asyncio.run(go())
    finally:
        receiver.close()
    first, swapped = receiver.bodies()
    assert [a["labels"]["alertname"] for a in first] == ["WireGuardPeerDegraded"]
    assert first[0]["labels"]["severity"] == "warning"
    assert first[0]["annotations"]["summary"].endswith("is degraded (mtu)")
    assert "path MTU 1144" in first[0]["annotations"]["description"]
    by_name = {a["labels"]["alertname"]: a for a in swapped}
    assert set(by_name) == {"WireGuardPeerDown", "WireGuardPeerDegraded"}
    # the degraded alert is resolved (ends now), the down one fires (ends four intervals ahead unless re-sent)
    assert by_name["WireGuardPeerDegraded"]["endsAt"] < by_name["WireGuardPeerDown"]["endsAt"]


def test_an_alert_whose_link_healed_while_stopped_is_resolved_after_the_restart(tmp_path: Path) -> None:
    from wgtrack.history import db, memory
    from wgtrack.history.outbox import Outbox
    from wgtrack.history.writer import Batch

    conn = db.open_store(tmp_path / "history.db")
    settings = AlertmanagerSettings(url="http://127.0.0.1:9", resend_interval_s=30, instance="vpn1")
    down = peer(KEY_B, friendly_name="bob", status=Status.DOWN, since=T_NS / 1e9 - 12.0)

    def stored(outbox: Outbox) -> None:  # what the cycle's batch does
        batch = Batch()
        outbox.drain_into(batch)
        for statement, rows, _ in batch.writes:
            conn.executemany(statement, rows)

    async def go() -> list[dict[str, Any]]:
        first, outbox = Alertmanager("output:alertmanager", settings), Outbox(memory.load(conn, T_NS / 1e9))
        first.keep_in(outbox, "output:alertmanager")
        await first.publish(snapshot(peer(), down))
        stored(outbox)  # then the process dies; bob heals while it is away
        second, outbox = Alertmanager("output:alertmanager", settings), Outbox(memory.load(conn, T_NS / 1e9 + 60))
        second.keep_in(outbox, "output:alertmanager")
        await second.publish(dataclasses.replace(snapshot(peer(), peer(KEY_B, friendly_name="bob")),
                                                 time_ns=T_NS + 60 * 10**9))
        return second._pending or []

    pending = asyncio.run(go())
    assert [(a["labels"]["peer"], a["endsAt"] > a["startsAt"]) for a in pending] == [(KEY_B, True)]
    assert pending[0]["startsAt"] == Alertmanager("x", settings)._alert(down, down.since)["startsAt"]
