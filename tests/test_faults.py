"""One test per fault class of the lifecycle issue, against the real daemon process with a
scripted ``wg`` and real loopback receivers: stalled pipes, trickling and redirecting
receivers, connection floods, hostile dumps, keys in stderr, reloads and stops."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests import lp
from tests.daemon_helpers import Watched, start_local, write_config
from tests.receiver import Receiver
from tests.servers import free_port, http

KEY = "kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY="  # shaped like a private key


def config(tmp_path: Path, fakewg: Path, extra: str = "", **general: object) -> tuple[Path, Path]:
    out = tmp_path / "out" / "wgtrack.lp"
    out.parent.mkdir(exist_ok=True)
    settings = {"cycle_time": 0.5, "wg_command": fakewg, "wg_timeout": 1, "ping_interval": 0, "loglevel": "info",
                "wg_config_dir": tmp_path, **general}
    conf = write_config(tmp_path / "wgtrack.conf", out, **settings)
    conf.write_text(conf.read_text() + extra)
    return conf, out


@contextlib.contextmanager
def running(tmp_path: Path, fakewg: Path, extra: str = "", *args: str, stdout: int = subprocess.DEVNULL,
            max_files: int | None = None, **general: object) -> Iterator[Watched]:
    conf, out = config(tmp_path, fakewg, extra, **general)
    w = start_local(conf, out, tmp_path / "log", *args, stdout=stdout, max_files=max_files)
    try:
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(5)
        if w.proc.stdout is not None:
            w.proc.stdout.close()


def cycles_go_on(w: Watched, count: int = 4, timeout: float = 10.0) -> None:
    c = w.cycle()
    w.wait_for(f"{count} more cycles", lambda t: w.cycle() >= c + count, timeout)


def stops_in_time(w: Watched) -> float:
    rc, took = w.stop(signal.SIGTERM, timeout=8.0)
    assert rc == 0, w.log()
    assert took < 5.0, f"SIGTERM took {took:.1f} s"
    return took


class Trickler:
    """Accepts, then answers one byte a second, forever (bounded by the test)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        conns = []
        for _ in range(600):  # at most 2 minutes
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                self.accepted += 1
                conns.append(conn)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(b"H")
        for conn in conns:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def test_a_stalled_stdout_pipe_stalls_nothing_and_sigterm_exits(tmp_path: Path, fakewg: Path) -> None:
    # A pipe nobody reads: its buffer (64 KiB) fills within a few cycles.
    with running(tmp_path, fakewg, "", "--stdout", stdout=subprocess.PIPE, cycle_time=0.2) as w:
        cycles_go_on(w, 15)  # the file output and the cycle go on while stdout is stuck
        w.wait_log("output:stdout: publish failed", 30)  # after its write deadline (10 s)
        cycles_go_on(w, 5)
        stops_in_time(w)
        assert w.log().count("output:stdout: publish failed") == 1  # once per failure run


def test_a_trickling_receiver_stalls_nothing_and_sigterm_exits(tmp_path: Path, fakewg: Path) -> None:
    trickler = Trickler()
    try:
        extra = f"[output:webhook]\nurl = http://127.0.0.1:{trickler.port}/hook\ntimeout = 2\n"
        with running(tmp_path, fakewg, extra) as w:
            cycles_go_on(w)
            w.wait_log("no complete answer within 2 s", 10)  # the deadline fired despite the bytes
            cycles_go_on(w)
            time.sleep(0.5)  # a request is in flight again
            stops_in_time(w)
            assert "undelivered events" in w.log()
    finally:
        trickler.close()


def test_a_redirect_is_a_failure_and_credentials_stay_here(tmp_path: Path, fakewg: Path) -> None:
    elsewhere = Receiver()
    redirect = socket.create_server(("127.0.0.1", 0))
    port = redirect.getsockname()[1]

    def answer_302() -> None:
        redirect.settimeout(10)
        for _ in range(3):
            with contextlib.suppress(OSError):
                conn, _ = redirect.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: {elsewhere.url}\r\nContent-Length: 0\r\n\r\n"
                                 .encode())

    threading.Thread(target=answer_302, daemon=True).start()
    try:
        extra = (f"[output:webhook]\nurl = http://127.0.0.1:{port}/hook\nsecret = s3cr3t\n"
                 "header_authorization = Bearer T0KEN\n")
        with running(tmp_path, fakewg, extra) as w:
            w.wait_log("HTTP 302", 10)
            stops_in_time(w)
        assert elsewhere.requests == []  # nothing, and no credential, went to the other host
        assert "T0KEN" not in w.log() and "s3cr3t" not in w.log()
    finally:
        redirect.close()
        elsewhere.close()


def test_a_connection_flood_cannot_take_the_descriptors_wg_needs(tmp_path: Path, fakewg: Path) -> None:
    port = free_port()
    extra = f"[output:prometheus]\nlisten = 127.0.0.1:{port}\n"
    with running(tmp_path, fakewg, extra, max_files=128) as w:
        cycles_go_on(w)
        flood: list[socket.socket] = []
        try:
            for _ in range(150):  # bounded: more idle connections than the daemon has descriptors
                with contextlib.suppress(OSError):
                    flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            for sock in flood[:50]:  # and some send endless header lines
                with contextlib.suppress(OSError):
                    sock.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 16000)
            cycles_go_on(w, 6)  # wg still runs: no "Too many open files"
            assert "Too many open files" not in w.log()
        finally:
            for sock in flood:
                sock.close()
        time.sleep(0.5)
        status, body = http(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"wgtrack_up 1" in body
        assert len(w.log().splitlines()) < 50  # no traceback storm
        rss_kb = int(next(x for x in Path(f"/proc/{w.proc.pid}/status").read_text().splitlines()
                          if x.startswith("VmHWM")).split()[1])
        print(f"peak RSS under the flood: {rss_kb / 1024:.0f} MB")
        assert rss_kb < 200 * 1024
        stops_in_time(w)


def test_hostile_interface_names_and_a_flood_of_bad_lines(tmp_path: Path, fakewg: Path) -> None:
    good = (tmp_path / "dump").read_text()
    (tmp_path / "outside.conf").write_text("[Peer]\nPublicKey = x\n")  # what "../outside" would read
    iface = "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="
    hostile = f"wg\0x\tpriv\t{iface}\t1\toff\n../outside\tpriv\t{iface}\t1\toff\n"
    flood = "".join(f"junk line {i} with {KEY}\n" for i in range(300_000))  # ~20 MB
    (tmp_path / "dump").write_text(good + hostile + flood)
    with running(tmp_path, fakewg, wg_timeout=5, cycle_time=1) as w:
        cycles_go_on(w, 3, 30)
        assert len(lp.peers(w.text())) == 6  # every good peer is still tracked
        log = w.log()
        assert "interface name breaks the kernel's rules" in log
        assert "outside.conf" not in log
        assert KEY not in log and "junk" not in log
        assert len(log.encode()) < 10_000, "the log must stay bounded"
        status = Path(f"/proc/{w.proc.pid}/status").read_text()
        rss_kb = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
        print(f"peak RSS with 20 MB of bad lines: {rss_kb / 1024:.0f} MB")
        stops_in_time(w)


def test_a_key_in_wgs_stderr_is_redacted_everywhere(tmp_path: Path, fakewg: Path) -> None:
    (tmp_path / "fail").write_text(f"Unable to modify interface: key {KEY} rejected\n")
    status_file = tmp_path / "out" / "status.json"
    with running(tmp_path, fakewg, f"[output:json]\nfilename = {status_file}\n") as w:
        w.wait_for("wg failing", lambda t: "wg_ok=0i" in t, 10)
        w.wait_log("cannot read WireGuard state", 10)
        stops_in_time(w)
    everything = w.log() + w.text() + status_file.read_text()
    assert KEY not in everything and KEY[:30] not in everything
    assert "<redacted>" in w.log()


def test_reload_keeps_the_exporter_stdout_and_queued_events(tmp_path: Path, fakewg: Path) -> None:
    port, hook_port = free_port(), free_port()
    extra = (f"[output:prometheus]\nlisten = 127.0.0.1:{port}\n"
             f"[output:webhook]\nurl = http://127.0.0.1:{hook_port}/hook\nbackoff = 0.2\n")
    stdout = tmp_path / "stdout"
    with open(stdout, "wb") as out_file, running(tmp_path, fakewg, extra, "--stdout", stdout=out_file.fileno()) as w:
        w.wait_log("delivery failed", 10)  # the receiver is down: events queue up
        conf = tmp_path / "wgtrack.conf"
        conf.write_text(conf.read_text().replace("backoff = 0.2", "backoff = 0.3"))  # the webhook changes
        w.proc.send_signal(signal.SIGHUP)
        w.wait_log("reloaded", 10)
        assert "~output:webhook" in w.log() and "reload refused" not in w.log()
        assert http(f"http://127.0.0.1:{port}/metrics")[0] == 200  # the exporter kept its socket
        w.proc.send_signal(signal.SIGHUP)  # nothing changed this time
        w.wait_for("second reload", lambda t: w.log().count("reloaded") == 2, 10)
        assert "outputs unchanged" in w.log()
        conf.write_text(conf.read_text().replace(f"listen = 127.0.0.1:{port}\n",
                                                 f"listen = 127.0.0.1:{port}\npath = /m2\n"))
        w.proc.send_signal(signal.SIGHUP)  # the exporter changes: same address, handed over
        w.wait_for("third reload", lambda t: w.log().count("reloaded") == 3, 10)
        assert "~output:prometheus" in w.log() and "reload refused" not in w.log()
        assert http(f"http://127.0.0.1:{port}/m2")[0] == 200
        size = stdout.stat().st_size
        cycles_go_on(w)
        assert stdout.stat().st_size > size  # --stdout survived both reloads
        receiver = Receiver(hook_port)
        try:
            receiver.wait_for(3, timeout=15)  # tracker_started, 2 interfaces (with 6 peers) ...
            stops_in_time(w)
            bodies = receiver.bodies()
            kinds = [b["kind"] for b in bodies]
        finally:
            receiver.close()
    assert kinds.count("tracker_started") == 1 and kinds.count("interface_up") == 2  # none lost, none twice
    assert sum(b["details"]["peers"] for b in bodies if b["kind"] == "interface_up") == 6
    assert "reload refused" not in w.log()


def test_status_says_when_the_daemon_stopped_or_stalled(tmp_path: Path, fakewg: Path) -> None:
    import os
    import sys

    from tests.daemon_helpers import REPO

    status_file = tmp_path / "out" / "status.json"
    with running(tmp_path, fakewg, f"[output:json]\nfilename = {status_file}\n") as w:
        w.wait_for("status written", lambda t: status_file.exists(), 10)
        stops_in_time(w)

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wgtrack", "status", "--file", str(status_file)],
                              capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})

    stopped = status()
    assert stopped.returncode != 0 and "stopped" in stopped.stderr
    doc = json.loads(status_file.read_text())
    doc["stopped"], doc["time"] = False, time.time() - 60  # a daemon that died without a word
    status_file.write_text(json.dumps(doc))
    stale = status()
    assert stale.returncode != 0 and "not updating it" in stale.stderr
    status_file.write_text(json.dumps({"interfaces": "nope"}))
    wrong = status()
    assert wrong.returncode != 0 and "not a wgtrack status file" in wrong.stderr
    assert "Traceback" not in wrong.stderr
