"""``[output:influxdb]`` against a real server that speaks the v2 write API (Debian's
``victoria-metrics``): written points arrive, and the points of an outage arrive after it."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.daemon_helpers import start_in_lab
from tests.lab import Lab, wait_until

VM_PORT = 8428  # inside mon's own network namespace


def start_vm(lab: Lab, data: Path, log: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("victoria-metrics")
    assert binary, "make test installs Debian's victoria-metrics"
    return lab.spawn_in_mon([binary, f"-httpListenAddr=127.0.0.1:{VM_PORT}", f"-storageDataPath={data}",
                             "-retentionPeriod=1", "-search.latencyOffset=0s", "-loggerLevel=ERROR"], stderr=log)


def cycles_stored(lab: Lab) -> set[int]:
    query = urllib.parse.urlencode({"match[]": "wgtrack_tracker_cycle"})
    try:
        text = lab.http_get("mon", f"http://127.0.0.1:{VM_PORT}/api/v1/export?{query}", timeout=5)
    except RuntimeError:
        return set()
    return {int(v) for line in text.splitlines() if line.strip() for v in json.loads(line)["values"]}


@pytest.mark.lab
@pytest.mark.server
def test_points_arrive_and_survive_an_outage(lab: Lab, tmp_path: Path) -> None:
    vm = start_vm(lab, tmp_path / "vm", tmp_path / "vm.log")
    wait_until("victoria-metrics up", lambda: _healthy(lab), 30, interval=0.5)
    daemon = start_in_lab(lab, tmp_path, f"[output:influxdb]\nurl = http://127.0.0.1:{VM_PORT}\n"
                          "bucket = wgtrack\norg = lab\ntoken = not-needed-by-vm\ntimeout = 2\n",
                          cycle_time=1, ping_interval=1, ping_timeout=0.5)
    wait_until("first points stored", lambda: len(cycles_stored(lab)) >= 3, 30, interval=0.5)
    assert "wgtrack_transfer_rx" in lab.http_get(
        "mon", f"http://127.0.0.1:{VM_PORT}/api/v1/label/__name__/values", timeout=5)

    lab._stop(vm)  # outage: the daemon keeps cycling and buffers
    outage_from = daemon.cycle()
    daemon.wait_for("cycles during the outage", lambda t: daemon.cycle() >= outage_from + 5, 20)
    outage_to = daemon.cycle()
    assert daemon.proc.poll() is None
    start_vm(lab, tmp_path / "vm", tmp_path / "vm2.log")  # back, with its old data
    wait_until("outage points delivered", lambda: set(range(outage_from, outage_to + 1)) <= cycles_stored(lab),
               40, interval=0.5)
    stored = cycles_stored(lab)
    assert set(range(min(stored), max(stored) + 1)) <= stored  # no cycle lost
    assert "write failed, retrying with back-off" in daemon.log() and "delivering again" in daemon.log()
    assert "not-needed-by-vm" not in daemon.log()


def _healthy(lab: Lab) -> bool:
    try:
        return "OK" in lab.http_get("mon", f"http://127.0.0.1:{VM_PORT}/health", timeout=3)
    except RuntimeError:
        return False


@pytest.mark.parametrize("precision,expected", [("ns", "1795000000123456789"), ("ms", "1795000000123"),
                                                ("s", "1795000000")])
def test_precision_rewrites_timestamps(precision: str, expected: str) -> None:
    from wgtrack.outputs.influxdb import with_precision

    assert with_precision("m,t=a f=1i 1795000000123456789", precision) == f"m,t=a f=1i {expected}"


def test_buffer_is_bounded_and_drops_the_oldest() -> None:
    import asyncio

    from tests.servers import free_port
    from tests.snapshots import peer, snapshot
    from wgtrack.outputs.influxdb import InfluxDB, InfluxDBSettings

    out = InfluxDB("output:influxdb",
                   InfluxDBSettings(url=f"http://127.0.0.1:{free_port()}", bucket="b", buffer_points=5))

    async def go() -> None:
        await out.publish(snapshot(peer()))  # 3 lines: peer, interface, tracker
        await out.publish(snapshot(peer()))

    asyncio.run(go())  # not started: nothing is sent, only buffered
    assert len(out.buffer) == 5 and out.dropped == 1
