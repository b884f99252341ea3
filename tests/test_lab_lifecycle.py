"""Every output at once, through a break, three SIGHUPs and a heal, then SIGTERM, in the real
lab: the file, json, stdout into a pipe, a real Prometheus scraping every 0.5 s, a webhook to a
counting receiver, the real Alertmanager, and InfluxDB writes to VictoriaMetrics.

What must hold: the receiver gets each event exactly once, Prometheus misses at most one
scrape, VictoriaMetrics has every cycle, Alertmanager shows firing then resolved, and the
daemon exits 0 within 5 s."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from tests.daemon_helpers import Watched, write_config
from tests.lab import REPO, Lab, wait_until
from tests.servers import alertmanager_setup
from tests.test_alertmanager import _ready as am_ready
from tests.test_influxdb_direct import VM_PORT, _healthy, cycles_stored, start_vm

pytestmark = [pytest.mark.lab, pytest.mark.server]

HOOK_PORT, AM_PORT, AM_HOOK_PORT, PROM_PORT, EXPORTER_PORT = 9095, 9093, 9096, 9090, 9586  # in mon's namespace


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def start_receiver(lab: Lab, port: int, out: Path, log: Path) -> None:
    out.touch()
    lab.spawn_in_mon(["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.receiver_main", str(port), str(out)],
                     stderr=log)


def start_alertmanager(lab: Lab, tmp_path: Path) -> None:
    binary, conf = alertmanager_setup(lab, tmp_path, AM_HOOK_PORT, tmp_path / "am.jsonl")
    lab.spawn_in_mon([binary, f"--config.file={conf}", f"--storage.path={tmp_path / 'am'}",
                      f"--web.listen-address=127.0.0.1:{AM_PORT}", "--cluster.listen-address="],
                     stderr=tmp_path / "alertmanager.log")
    wait_until("alertmanager ready", lambda: am_ready(lab, AM_PORT), 30, interval=0.5)


def start_prometheus(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "prometheus.yml"
    conf.write_text(f"""global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: wgtrack
    static_configs: [{{targets: ["127.0.0.1:{EXPORTER_PORT}"]}}]
""")
    lab.spawn_in_mon(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{PROM_PORT}"], stderr=tmp_path / "prometheus.log")


def test_every_output_through_break_reloads_heal_and_stop(lab: Lab, tmp_path: Path) -> None:
    start_receiver(lab, HOOK_PORT, tmp_path / "events.jsonl", tmp_path / "receiver.log")
    start_alertmanager(lab, tmp_path)
    start_vm(lab, tmp_path / "vm", tmp_path / "vm.log")
    wait_until("victoria-metrics up", lambda: _healthy(lab), 30, interval=0.5)
    start_prometheus(lab, tmp_path)

    out = tmp_path / "wgtrack.lp"
    conf = write_config(tmp_path / "wgtrack.conf", out, cycle_time=1, ping_interval=1, ping_timeout=0.5,
                        wg_config_dir=lab.wg_config_dir, loglevel="info")
    conf.write_text(conf.read_text() + f"""[output:json]
filename = {tmp_path / 'status.json'}
[output:prometheus]
listen = 127.0.0.1:{EXPORTER_PORT}
[output:webhook]
url = http://127.0.0.1:{HOOK_PORT}/hook
timeout = 5
[output:alertmanager]
url = http://127.0.0.1:{AM_PORT}
instance = lab-mon
resend_interval = 5
[output:influxdb]
url = http://127.0.0.1:{VM_PORT}
bucket = wgtrack
org = lab
token = t0ken-for-vm
timeout = 2
""")
    original = conf.read_text()
    log = tmp_path / "log"
    argv = ["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-m", "-n", sys.executable, "-m", "wgtrack", "-c",
            str(conf), "--stdout"]
    with open(log, "ab") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env={"PYTHONPATH": str(REPO),
                                                                               "PATH": "/usr/sbin:/usr/bin:/bin"})
    lab.procs.append(proc)
    daemon = Watched(proc, out, log)
    stdout_lines: list[bytes] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the daemon exits
            stdout_lines.append(line)

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    b = lab.hosts["b"].public_key

    def query(expr: str) -> list[dict[str, object]]:
        try:
            body = lab.http_get("mon", f"http://127.0.0.1:{PROM_PORT}/api/v1/query?"
                                f"{urllib.parse.urlencode({'query': expr})}")
        except RuntimeError:  # Prometheus not listening yet
            return []
        result: list[dict[str, object]] = json.loads(body)["data"]["result"]
        return result

    try:
        wait_until("Prometheus scraping wgtrack", lambda: query('up{job="wgtrack"} == 1'), 30, interval=0.5)
        daemon.wait_for("all up", lambda t: all(daemon.status(lab.hosts[p].public_key) == "up:ok"
                                                for p in lab.peer_names), 30)
        lab.blackhole("b")
        daemon.wait_for("b down", lambda t: (daemon.status(b) or "").startswith("down"), 20)

        conf.write_text(original.replace("[general]", "[general]\nbogus_key = 1"))  # 1: broken
        proc.send_signal(signal.SIGHUP)
        daemon.wait_log("reload refused", 10)
        conf.write_text(original.replace("timeout = 5", "timeout = 4"))  # 2: one output changes
        proc.send_signal(signal.SIGHUP)
        daemon.wait_log("~output:webhook", 10)
        proc.send_signal(signal.SIGHUP)  # 3: nothing changes
        daemon.wait_log("outputs unchanged", 10)
        c = daemon.cycle()
        daemon.wait_for("cycles after the reloads", lambda t: daemon.cycle() >= c + 3, 10)

        lab.heal("b")
        daemon.wait_for("b up", lambda t: daemon.status(b) == "up:ok", 30)
        wait_until("Alertmanager resolved b", lambda: any(
            d["status"] == "resolved" for d in jsonl(tmp_path / "am.jsonl")), 40, interval=0.5)
        last_cycle = daemon.cycle()
        wait_until("VictoriaMetrics caught up", lambda: last_cycle in cycles_stored(lab), 30, interval=0.5)

        scrapes = query('count_over_time(up{job="wgtrack"}[10m])')
        failed = query('count_over_time(up{job="wgtrack"}[10m]) - sum_over_time(up{job="wgtrack"}[10m])')
        n_scrapes, n_failed = float(scrapes[0]["value"][1]), float(failed[0]["value"][1])  # type: ignore[index]
        stdout_before_stop = len(stdout_lines)
        rc, took = daemon.stop(signal.SIGTERM, timeout=8.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
    text = daemon.log()
    print(f"scrapes {n_scrapes:.0f}, failed {n_failed:.0f}; SIGTERM took {took:.2f} s; "
          f"{stdout_before_stop} stdout lines")
    assert rc == 0 and took < 5.0, text
    assert "Traceback" not in text
    # Prometheus: at most one failed scrape through three reloads.
    assert n_scrapes >= 10 and n_failed <= 1
    # The webhook receiver: each event exactly once. It writes what it got every 0.1 s: give the
    # last event, delivered during the stop, that long to reach its file.
    wait_until("tracker_stopping at the receiver", lambda: any(
        e["kind"] == "tracker_stopping" for e in jsonl(tmp_path / "events.jsonl")), 5, interval=0.1)
    events = jsonl(tmp_path / "events.jsonl")
    keys = Counter((e["kind"], e["time"], e.get("public_key")) for e in events)
    assert [k for k, n in keys.items() if n > 1] == []
    kinds = [(e["kind"], e.get("public_key")) for e in events]
    assert kinds.count(("peer_down", b)) == 1 and kinds.count(("peer_up", b)) == 1
    assert [k for k, _ in kinds].count("tracker_started") == 1
    assert [k for k, _ in kinds].count("tracker_stopping") == 1
    # VictoriaMetrics: every cycle's heartbeat, none missing.
    stored = cycles_stored(lab)
    assert set(range(1, last_cycle + 1)) <= stored, sorted(set(range(1, last_cycle + 1)) - stored)
    # Alertmanager: firing, then resolved, for b.
    notes = jsonl(tmp_path / "am.jsonl")
    states = [d["status"] for d in notes if any(a["labels"]["peer"] == b for a in d["alerts"])]  # type: ignore[attr-defined]
    assert states[0] == "firing" and "resolved" in states
    # stdout kept flowing across the reloads; the file and the status file are there.
    tracker_lines = [line for line in stdout_lines if line.startswith(b"wgtrack_tracker ")]
    assert len(tracker_lines) >= last_cycle - 1
    assert json.loads((tmp_path / "status.json").read_text())["stopped"] is True
    assert "t0ken-for-vm" not in text
