"""A real Prometheus (Debian ``prometheus``) scraping wgtrack in the lab: every dashboard query
returns data, the community queries return what they should, promtool finds nothing wrong,
and the alert rules pass their unit tests and go pending on a real break."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.daemon_helpers import start_in_lab
from tests.lab import Lab, wait_until

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "contrib" / "prometheus" / "wgtrack.rules.yml"
FLEET_RULES = REPO / "contrib" / "prometheus" / "wgtrack-fleet.rules.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "wgtrack-dashboard.json"
PROM_PORT, EXPORTER_PORT = 9090, 9586  # inside mon's own network namespace: no clash with the host


@pytest.mark.parametrize("rules,tests", [(RULES, "wgtrack.rules.test.yml"),
                                         (FLEET_RULES, "wgtrack-fleet.rules.test.yml")])
def test_rules_check_and_unit_tests(rules: Path, tests: str) -> None:
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", tests], capture_output=True, text=True,
                          timeout=120, cwd=REPO / "tests" / "promtool")
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$interface", ".*").replace("$peer", ".*")
            queries.append((panel["title"], expr.replace("$__rate_interval", "20s")))
    return queries


@pytest.mark.lab
def test_real_prometheus_scrapes_wgtrack(lab: Lab, tmp_path: Path) -> None:
    daemon = start_in_lab(lab, tmp_path, f"[output:prometheus]\nlisten = 127.0.0.1:{EXPORTER_PORT}\n",
                          cycle_time=1, ping_interval=1, ping_timeout=0.5)
    prom_conf = tmp_path / "prometheus.yml"
    prom_conf.write_text(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: wgtrack
    static_configs: [{{targets: ["127.0.0.1:{EXPORTER_PORT}"]}}]
""")
    lab.spawn_in_mon(["prometheus", f"--config.file={prom_conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{PROM_PORT}", "--query.lookback-delta=10m"],
                     stderr=tmp_path / "prometheus.log")

    def query(expr: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at else {})
        body = lab.http_get("mon", f"http://127.0.0.1:{PROM_PORT}/api/v1/query?{urllib.parse.urlencode(params)}")
        reply = json.loads(body)
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    daemon.wait_for("all up", lambda t: all(daemon.status(lab.hosts[p].public_key) == "up:ok"
                                            for p in lab.peer_names), 20)
    wait_until("three scraped peers", lambda: len(query("wgtrack_peer_up == 1")) == 3, 40, interval=0.5)
    time.sleep(6)  # enough samples for every rate() window in the dashboard

    for title, expr in dashboard_queries():
        assert query(expr), f"dashboard panel {title!r}: {expr} returned no data"

    now = time.time()
    old = "time() - wireguard_latest_handshake_seconds > 300 and wireguard_latest_handshake_seconds > 0"
    assert query(old, now) == []  # every handshake is fresh now
    later = query(old, now + 400)  # 400 s on, with no new sample, all three are too old
    assert sorted(r["metric"]["friendly_name"] for r in later) == ["peer-a", "peer-b", "peer-c"]  # type: ignore[index]
    per_iface = query("sum(idelta(wireguard_sent_bytes_total[20s])) by (interface)")
    assert [r["metric"] for r in per_iface] == [{"interface": "wg0"}]

    exposition = lab.http_get("mon", f"http://127.0.0.1:{EXPORTER_PORT}/metrics")
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True,
                          timeout=60)
    assert lint.returncode == 0 and lint.stdout.strip() == "" and lint.stderr.strip() == "", lint.stdout + lint.stderr

    lab.blackhole("b")

    def pending_down() -> bool:
        alerts = json.loads(lab.http_get("mon", f"http://127.0.0.1:{PROM_PORT}/api/v1/alerts"))["data"]["alerts"]
        return any(a["labels"]["alertname"] == "WireGuardPeerDown" and a["labels"].get("friendly_name") == "peer-b"
                   for a in alerts)

    wait_until("WireGuardPeerDown pending for peer-b", pending_down, 30, interval=0.5)
    exposition = lab.http_get("mon", f"http://127.0.0.1:{EXPORTER_PORT}/metrics")
    b_up = [line for line in exposition.splitlines()
            if line.startswith("wgtrack_peer_up{") and 'friendly_name="peer-b"' in line]
    assert len(b_up) == 1 and b_up[0].endswith(" 0")
