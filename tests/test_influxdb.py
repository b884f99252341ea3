"""The Telegraf file, as written in the lab, is accepted by a real InfluxDB 1.6 with integer counters."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import write_config
from tests.lab import Lab
from tests.servers import http, influxdb_v1

pytestmark = [pytest.mark.lab, pytest.mark.server]


def query(url: str, q: str) -> dict[str, object]:
    status, body = http(f"{url}/query?db=wgt&q={urllib.parse.quote(q)}", data=b"")
    assert status == 200, body
    return json.loads(body)


def test_file_written_in_lab_loads_into_influxdb_16(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "wgtrack.lp"
    conf = write_config(tmp_path / "wgtrack.conf", out, ping_interval=1, ping_timeout=0.5,
                        wg_config_dir=lab.wg_config_dir)
    proc = lab.daemon(conf, "--once", stderr=tmp_path / "log")
    assert proc.wait(30) == 0, (tmp_path / "log").read_text()
    text = out.read_text()
    assert len(lp.peers(text)) == 3
    with influxdb_v1(tmp_path / "influx") as url:
        assert http(f"{url}/query?q=CREATE%20DATABASE%20wgt", data=b"")[0] == 200
        status, body = http(f"{url}/write?db=wgt", data=text.encode())
        assert status == 204, body
        result = query(url, "SHOW FIELD KEYS FROM wgtrack")
        series = result["results"][0]["series"][0]  # type: ignore[index]
        types = dict(series["values"])
        assert types["transfer_rx"] == "integer"
        assert types["transfer_tx"] == "integer"
        assert types["is_up"] == "integer"
        assert types["latest_handshake"] == "integer"
        assert types["status"] == "string"
        assert types["rtt_ms"] == "float"
        rows = query(url, "SELECT status, friendly_name FROM wgtrack")["results"][0]["series"][0]["values"]  # type: ignore[index]
        assert sorted(r[2] for r in rows) == ["peer-a", "peer-b", "peer-c"]
        assert {r[1] for r in rows} == {"up:ok"}
        tracker = query(url, "SHOW FIELD KEYS FROM wgtrack_tracker")["results"][0]["series"][0]["values"]  # type: ignore[index]
        assert dict(tracker)["cycle"] == "integer"
