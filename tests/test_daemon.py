"""The real daemon process against a scripted fake ``wg`` (an edge fake): the lab tests repeat
the important cases with real WireGuard; these cover what a real wg cannot easily be made to do
(hang, fail, print garbage)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import REPO, Watched, run_cli, start_local, write_config

DATA = Path(__file__).parent / "data"
KEY_A = "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="  # a peer in lab-mixed.dump


@pytest.fixture
def daemon(tmp_path: Path, fakewg: Path) -> Iterator[Watched]:
    out = tmp_path / "out" / "wgtrack.lp"
    out.parent.mkdir()
    conf = write_config(tmp_path / "wgtrack.conf", out, cycle_time=0.5, wg_command=fakewg,
                        wg_timeout=1, ping_interval=0, loglevel="debug", wg_config_dir=tmp_path)
    watched = start_local(conf, out, tmp_path / "log")
    yield watched
    if watched.proc.poll() is None:
        watched.proc.kill()
        watched.proc.wait(5)


def test_writes_peers_and_interfaces(daemon: Watched) -> None:
    text = daemon.wait_for("peers", lambda t: KEY_A in lp.peers(t))
    points = lp.parse(text)
    assert {p.tags.get("interface") for p in points if p.measurement == "wgtrack_interface"} == {"wg0", "wg1"}
    assert len(lp.peers(text)) == 6
    assert all(p.time_ns > 0 for p in points)


def test_private_keys_never_reach_output_or_log(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("a few cycles", lambda t: daemon.cycle() >= 3)
    secrets = [line.split("\t")[1] for line in (DATA / "lab-mixed.dump").read_text().splitlines()
               if len(line.split("\t")) == 5]
    secrets += [line.split("\t")[2] for line in (DATA / "lab-mixed.dump").read_text().splitlines()
                if len(line.split("\t")) == 9 and line.split("\t")[2] != "(none)"]
    assert len(secrets) == 3
    for secret in secrets:
        # Without its trailing '=', so that an escaped '\=' in the file could not hide it.
        assert secret[:-1] not in daemon.text() and secret[:-1] not in daemon.log()


def test_hung_wg_marks_data_stale_and_recovers(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("peers", lambda t: KEY_A in lp.peers(t))
    (tmp_path / "hang").touch()
    text = daemon.wait_for("stale", lambda t: lp.tracker(t).fields["wg_ok"] == 0, 10)
    assert KEY_A not in lp.peers(text)  # no old data presented as current
    assert "timed out after 1 s" in str(lp.tracker(text).fields["wg_error"])
    (tmp_path / "hang").unlink()
    daemon.wait_for("recovered", lambda t: KEY_A in lp.peers(t), 10)
    assert daemon.log().count("cannot read WireGuard state") == 1
    assert "WireGuard state readable again" in daemon.log()


def test_failing_wg_is_logged_once_per_run(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("peers", lambda t: KEY_A in lp.peers(t))
    (tmp_path / "fail").touch()
    c = daemon.cycle()
    daemon.wait_for("several failed cycles", lambda t: lp.tracker(t).fields["wg_ok"] == 0 and daemon.cycle() > c + 3)
    assert daemon.log().count("cannot read WireGuard state") == 1
    assert "Permission denied" in daemon.log()
    assert daemon.proc.poll() is None


def test_vanished_interface_and_peer_leave_the_output(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("wg1", lambda t: "interface=wg1" in t)
    lines = [x for x in (DATA / "lab-mixed.dump").read_text().splitlines()
             if not x.startswith("wg1\t") and KEY_A not in x]
    (tmp_path / "dump").write_text("\n".join(lines) + "\n")
    text = daemon.wait_for("wg1 and peer gone", lambda t: "interface=wg1" not in t and KEY_A not in lp.peers(t), 10)
    assert len(lp.peers(text)) == 5
    assert "gone from WireGuard" in daemon.log()


def test_garbage_line_does_not_stop_the_others(daemon: Watched, tmp_path: Path) -> None:
    (tmp_path / "dump").write_text((DATA / "synthetic-zone-and-bad-lines.dump").read_text())
    text = daemon.wait_for("good peer", lambda t: "CCCC" in t, 10)
    assert len(lp.peers(text)) == 1
    assert "1 line(s) skipped, first line 3: peer public key is malformed" in daemon.log()


def test_sighup_applies_cycle_time_and_keeps_state(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("cycles", lambda t: daemon.cycle() >= 2)
    conf = tmp_path / "wgtrack.conf"
    conf.write_text(conf.read_text().replace("cycle_time = 0.5", "cycle_time = 3"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reloaded")
    assert "cycle 3 s" in daemon.log()
    c0 = daemon.cycle()
    time.sleep(4.5)
    assert daemon.cycle() - c0 <= 2, "cycle_time 3 s should give at most 2 cycles in 4.5 s"
    assert daemon.log().count("now tracked") == 6  # no peer was forgotten and re-added


def test_sighup_with_broken_config_keeps_running(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("cycles", lambda t: daemon.cycle() >= 2)
    conf = tmp_path / "wgtrack.conf"
    conf.write_text(conf.read_text().replace("[general]", "[general]\ncycles_checkperiod = 0"))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reload refused")
    assert "[general] cycles_checkperiod = '0': must be 1 or more" in daemon.log()
    c = daemon.cycle()
    daemon.wait_for("more cycles at the old pace", lambda t: daemon.cycle() >= c + 3, 5)


def test_sigterm_stops_cleanly_within_5s(daemon: Watched) -> None:
    daemon.wait_for("cycles", lambda t: daemon.cycle() >= 2)
    rc, took = daemon.stop(signal.SIGTERM)
    assert rc == 0 and took < 5
    assert daemon.log().count("received SIGTERM") == 1


def test_sigterm_during_hung_wg_is_still_prompt(daemon: Watched, tmp_path: Path) -> None:
    daemon.wait_for("cycles", lambda t: daemon.cycle() >= 1)
    (tmp_path / "hang").touch()
    hanging = tmp_path / "hanging"
    deadline = time.monotonic() + 10
    while not hanging.exists() or not hanging.read_text().strip():  # bounded: 10 s of 0.05 s looks
        assert time.monotonic() < deadline, "the next cycle never ran wg"
        time.sleep(0.05)
    pid = int(hanging.read_text())
    os.kill(pid, 0)  # the hang has begun: a cycle is waiting on this wg right now
    assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{daemon.proc.pid}\n") == 1  # the daemon's own
    rc, took = daemon.stop(signal.SIGTERM)
    assert rc == 0 and took < 5


def test_help_and_version() -> None:
    assert run_cli("--help").returncode == 0
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("wgtrack ")


def test_check_config(tmp_path: Path) -> None:
    good = write_config(tmp_path / "good.conf", tmp_path / "out.lp", cycle_time=5)
    result = run_cli("--check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "[general] cycle_time = 5.0" in result.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("[general]\ncycles_checkperiod = 0\n")
    result = run_cli("-c", str(bad), "--check-config")
    assert result.returncode == 1
    assert f"{bad}:2: [general] cycles_checkperiod = '0': must be 1 or more" in result.stderr


def test_missing_output_directory_is_a_clear_error_at_start(tmp_path: Path, fakewg: Path) -> None:
    out = tmp_path / "nodir" / "out.lp"
    conf = write_config(tmp_path / "c.conf", out, wg_command=fakewg)
    result = run_cli("-c", str(conf), "--once")
    assert result.returncode == 1
    assert f"directory {out.parent} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("--check-config", str(conf)).returncode == 1


def test_bad_config_does_not_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("[general]\ncycle_time = -1\n")
    result = run_cli("-c", str(bad))
    assert result.returncode == 1
    assert "[general] cycle_time = '-1': must be a positive number of seconds" in result.stderr


def test_once_writes_and_exits(tmp_path: Path, fakewg: Path) -> None:
    out = tmp_path / "out.lp"
    conf = write_config(tmp_path / "c.conf", out, wg_command=fakewg, ping_interval=0)
    result = run_cli("-c", str(conf), "--once", "-l", "warning")
    assert result.returncode == 0, result.stderr
    assert len(lp.peers(out.read_text())) == 6


def test_sd_notify_ready_reloading_stopping(tmp_path: Path, fakewg: Path) -> None:
    out = tmp_path / "out.lp"
    conf = write_config(tmp_path / "c.conf", out, cycle_time=0.5, wg_command=fakewg, ping_interval=0)
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(10)
        env = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(sock_path)}
        with open(tmp_path / "log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "wgtrack", "-c", str(conf)], stderr=log, env=env)
        try:
            assert sock.recv(4096) == b"READY=1"
            proc.send_signal(signal.SIGHUP)
            assert sock.recv(4096).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
            assert sock.recv(4096) == b"READY=1"
            proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert proc.wait(5) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_conf_only_peer_and_hostname_peer_do_not_crash(tmp_path: Path, fakewg: Path) -> None:
    # 0.2.0 crashed when the wg-quick config listed a peer absent from the live interface.
    absent = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZA="
    (tmp_path / "wg0.conf").write_text(
        f"[Interface]\nPrivateKey = x\n[Peer]\n# friendly_name = ghost\nPublicKey = {absent}\n"
        f"Endpoint = ghost.lab.test:51820\n[Peer]\n# friendly_name = alice\nPublicKey = {KEY_A}\n"
        "Endpoint = a.lab.test:51820\n")
    out = tmp_path / "out.lp"
    conf = write_config(tmp_path / "c.conf", out, wg_command=fakewg, ping_interval=0, wg_config_dir=tmp_path)
    result = run_cli("-c", str(conf), "--once")
    assert result.returncode == 0, result.stderr
    peers = lp.peers(out.read_text())
    assert absent not in peers
    assert peers[KEY_A].tags["friendly_name"] == "alice"


def test_stdout_lines_for_telegraf_execd(tmp_path: Path, fakewg: Path) -> None:
    conf = write_config(tmp_path / "c.conf", tmp_path / "out.lp", wg_command=fakewg, ping_interval=0,
                        loglevel="debug")
    result = run_cli("-c", str(conf), "--once", "--stdout")
    assert result.returncode == 0, result.stderr
    assert len(lp.peers(result.stdout)) == 6  # line protocol on stdout ...
    assert "DEBUG" not in result.stdout and "DEBUG" in result.stderr  # ... and logs only on stderr
    conf.write_text(conf.read_text() + "[output:stdout]\n")
    assert len(lp.peers(run_cli("-c", str(conf), "--once").stdout)) == 6


def test_json_status_file_and_status_command(tmp_path: Path, fakewg: Path) -> None:
    status_file = tmp_path / "run" / "status.json"  # its directory is created at start
    conf = write_config(tmp_path / "c.conf", tmp_path / "out.lp", wg_command=fakewg, ping_interval=0,
                        wg_config_dir=tmp_path)
    conf.write_text(conf.read_text() + f"[output:json]\nfilename = {status_file}\n")
    assert run_cli("-c", str(conf), "--once").returncode == 0
    table = run_cli("status", "-c", str(conf))
    assert table.returncode == 0, table.stderr
    assert "INTERFACE" in table.stdout and "NEXT RE-RESOLVE" in table.stdout
    assert "3+lM+fs3…" in table.stdout and "198.51.100.11:51820" in table.stdout
    raw = run_cli("status", "--file", str(status_file), "--json")
    assert '"public_key": "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="' in raw.stdout
    missing = run_cli("status", "--file", str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "no status file at" in missing.stderr
