"""A restart operators do not see, against real WireGuard: the daemon stops (SIGTERM, then
kill -9) and starts again on the same history store while one link is down and another breaks
meanwhile. The webhook receiver is away for the first run, so its events wait in the store.

What must hold: every peer resumes its status and since; no peer_up or peer_down is sent for a
state that did not change; the events queued before the stop are delivered after it; the new
break is announced once; `wgtrack history` shows the outage that began before the restart;
the store passes `PRAGMA integrity_check` after the kill."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import Watched
from tests.lab import REPO, Lab, wait_until
from tests.test_lab_lifecycle import jsonl, start_receiver

pytestmark = pytest.mark.lab

HOOK_PORT = 9097


def _peers(status: Path) -> dict[str, dict[str, object]]:
    try:
        doc = json.loads(status.read_text())
    except (OSError, ValueError):
        return {}
    return {p["public_key"]: p for i in doc["interfaces"] for p in i["peers"]}


def _start(lab: Lab, conf: Path, log: Path) -> Watched:
    return Watched(lab.daemon(conf, stderr=log), conf.with_name("wgtrack.lp"), log)


def _cli(lab: Lab, conf: Path, *args: str) -> object:
    out = subprocess.run([sys.executable, "-m", "wgtrack", *args, "-c", str(conf), "--json"], capture_output=True,
                         text=True, timeout=30, cwd=REPO, check=True).stdout
    return json.loads(out)


def test_restart_and_kill_are_invisible(lab: Lab, tmp_path: Path) -> None:
    status, store, events = tmp_path / "status.json", tmp_path / "history.db", tmp_path / "events.jsonl"
    conf = tmp_path / "wgtrack.conf"
    conf.write_text(f"""[general]
cycle_time = 1
ping_interval = 1
ping_failafternum = 2
ping_timeout = 0.5
wg_config_dir = {lab.wg_config_dir}
loglevel = info
[output:influx]
filename = {tmp_path / 'wgtrack.lp'}
[output:json]
filename = {status}
[output:webhook]
url = http://127.0.0.1:{HOOK_PORT}/hook
timeout = 2
backoff = 0.2
[history]
path = {store}
""")
    keys = {name: lab.hosts[name].public_key for name in lab.peer_names}
    a, b, c = keys["a"], keys["b"], keys["c"]
    log = tmp_path / "log1"
    first = _start(lab, conf, log)
    wait_until("all up", lambda: all(_peers(status).get(k, {}).get("status") == "up:ok" for k in keys.values()), 30)
    lab.blackhole("b")
    wait_until("b down", lambda: str(_peers(status).get(b, {}).get("status", "")).startswith("down"), 30)
    before = _peers(status)
    rc, took = first.stop()
    assert rc == 0 and took < 5, first.log()

    # While stopped: c breaks, and the webhook receiver comes.
    lab.blackhole("c")
    start_receiver(lab, HOOK_PORT, events, tmp_path / "receiver.log")
    second = _start(lab, conf, tmp_path / "log2")
    wait_until("queued events delivered", lambda: any(e.get("kind") == "peer_down" and e.get("public_key") == b
                                                      for e in jsonl(events)), 30)
    wait_until("c down", lambda: str(_peers(status).get(c, {}).get("status", "")).startswith("down"), 40)
    after = _peers(status)
    assert after[a]["status"] == "up:ok" and after[a]["since"] == pytest.approx(before[a]["since"], abs=0.5)
    assert str(after[b]["status"]).startswith("down")
    assert after[b]["since"] == pytest.approx(before[b]["since"], abs=0.5)
    for k in (a, b):  # counters go on from where they were: never down across the restart
        assert int(after[k].get("rx_bytes", 0)) >= int(before[k].get("rx_bytes", 0)) > 0  # type: ignore[call-overload]
    assert "remembered" in second.log()

    # The events: the first run's, delivered late; after the restart, only c's news (once it came).
    wait_until("c's news delivered", lambda: any(e.get("kind") == "peer_down" and e.get("public_key") == c
                                                 for e in jsonl(events)), 15)
    names = {k: n for n, k in keys.items()}
    for n, e in enumerate(jsonl(events)):  # the trace, for people reading the run
        print(f"event {n}: {e.get('kind')} {names.get(str(e.get('public_key')), '-')} {e.get('message')}")
    received = [e for e in jsonl(events) if e.get("public_key")]
    started = [n for n, e in enumerate(jsonl(events)) if e.get("kind") == "tracker_started"]
    assert len(started) == 2, jsonl(events)  # both runs' starts: the first one's waited in the store
    after_restart = [e for e in jsonl(events)[started[1]:] if e.get("public_key")]
    assert not [e for e in after_restart if e["public_key"] in (a, b) and e["kind"] in ("peer_up", "peer_down")], \
        after_restart
    news_c = [e for e in after_restart if e["public_key"] == c]
    assert [e["kind"] for e in news_c] == ["peer_down"], news_c
    details, message = news_c[0]["details"], str(news_c[0]["message"])
    assert isinstance(details, dict) and details["while_stopped"] == 1 and "while wgtrack was stopped" in message
    downs_b = [e for e in received if e["kind"] == "peer_down" and e["public_key"] == b]
    assert len(downs_b) == 1, downs_b  # delivered once, after the restart

    history = _cli(lab, conf, "history")
    assert isinstance(history, list)
    outage_b = [r for r in history if r["record"] == "outage" and r["public_key"] == b]
    assert len(outage_b) == 1 and outage_b[0]["end"] is None
    assert outage_b[0]["start"] == pytest.approx(before[b]["since"], abs=0.5)
    report = _cli(lab, conf, "report")
    assert isinstance(report, list)
    by_key = {r["public_key"]: r for r in report}
    assert by_key[b]["outages"] == 1 and by_key[a]["outages"] == 0

    # kill -9: nothing torn, and the next start resumes again.
    second.proc.send_signal(signal.SIGKILL)
    second.proc.wait(5)
    with sqlite3.connect(store) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    lab.heal("c")
    third = _start(lab, conf, tmp_path / "log3")
    wait_until("c up again", lambda: _peers(status).get(c, {}).get("status") == "up:ok", 40)
    assert str(_peers(status)[b]["status"]).startswith("down")
    assert _peers(status)[b]["since"] == pytest.approx(before[b]["since"], abs=0.5)
    rc, took = third.stop()
    assert rc == 0 and took < 5, third.log()
    wait_until("c's heal delivered", lambda: any(e.get("kind") == "peer_up" and e.get("public_key") == c
                                                 for e in jsonl(events)), 10)
    last = [e for e in jsonl(events)[started[1]:] if e.get("public_key") == b and e["kind"] in ("peer_up", "peer_down")]
    assert last == [], last
