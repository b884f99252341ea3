"""Service checks: parsing, and each kind run against a real server on loopback (a TCP listener,
Python's http.server, dnsmasq); how the daemon turns checks and ICMP into one probe result. The
run through real tunnels is in test_lab_engine.py."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port
from wgtrack import config, link
from wgtrack.checks import Check, CheckResult, parse_check, parse_checks, run
from wgtrack.daemon import Daemon, World

KEY = "A" * 43 + "="


def test_parse_every_kind_and_refuse_the_rest() -> None:
    assert parse_check("tcp://192.0.2.11:22") == Check("tcp", "192.0.2.11", 22)
    assert parse_check("http://192.0.2.11:8080/health#204").text == "http://192.0.2.11:8080/health#204"
    assert parse_check("https://[fd00::11]/x?y=1").text == "https://[fd00::11]:443/x?y=1"
    assert parse_check("dns://www.lab.test@192.0.2.11").text == "dns://www.lab.test.@192.0.2.11"
    assert [c.kind for c in parse_checks("tcp://192.0.2.1:1, http://192.0.2.1/ dns://a@192.0.2.1")] == \
        ["tcp", "http", "dns"]
    for bad, why in [("ftp://192.0.2.1/", "not one of"), ("tcp://192.0.2.1", "need a port"),
                     ("tcp://host.test:22", "IP address inside the tunnel"), ("http://192.0.2.1/#999", "100-599"),
                     ("dns://192.0.2.1", "dns://name@server"), ("tcp://192.0.2.1:99999", "1-65535")]:
        with pytest.raises(ValueError, match=why):
            parse_check(bad)
    with pytest.raises(config.ConfigError, match=r"\[peer:A+=\] check = .*not one of"):
        config.parse(f"[peer:{KEY}]\ncheck = gopher://192.0.2.1/\n")
    with pytest.raises(config.ConfigError, match="belongs in peer"):
        config.parse("[general]\ncheck = tcp://192.0.2.1:22\n")


class Status:
    code = 200


@pytest.fixture
def http_server() -> Iterator[tuple[int, type[Status]]]:
    Status.code = 200
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(Status.code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], Status
    finally:
        server.shutdown()
        server.server_close()


def test_tcp_check_against_a_listener_and_a_closed_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        ok = asyncio.run(run(Check("tcp", "127.0.0.1", port), 2.0))
    assert ok.ok and ok.rtt_ms is not None and ok.error is None
    closed = asyncio.run(run(Check("tcp", "127.0.0.1", free_port()), 2.0))
    assert not closed.ok and "refused" in (closed.error or "").lower()


def test_http_check_wants_2xx_or_the_status_given(http_server: tuple[int, type[Status]]) -> None:
    port, status = http_server
    assert asyncio.run(run(parse_check(f"http://127.0.0.1:{port}/health"), 2.0)).ok
    status.code = 500
    failed = asyncio.run(run(parse_check(f"http://127.0.0.1:{port}/health"), 2.0))
    assert not failed.ok and failed.error == "HTTP 500, wanted 2xx"
    status.code = 204
    assert asyncio.run(run(parse_check(f"http://127.0.0.1:{port}/health#204"), 2.0)).ok
    assert not asyncio.run(run(parse_check(f"http://127.0.0.1:{port}/health#200"), 2.0)).ok


def test_a_silent_service_costs_only_the_timeout() -> None:
    with socket.socket() as listener:  # accepts (kernel backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        result = asyncio.run(run(parse_check(f"http://127.0.0.1:{listener.getsockname()[1]}/"), 0.5))
    assert not result.ok and result.error == "no answer within 0.5 s"
    assert time.monotonic() - started < 3.0  # the deadline fires (bounds a hang, not a speed claim)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("dnsmasq")
    if binary is None:
        pytest.fail("dnsmasq is needed (make test installs dnsmasq-base)")
    port = free_port()
    proc = subprocess.Popen([binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
                             "--listen-address=127.0.0.1", f"--port={port}", "--address=/www.check.test/192.0.2.55",
                             f"--pid-file={tmp_path / 'pid'}", "--user=root"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: at most 10 s of 0.1 s polls
            if asyncio.run(run(Check("dns", "127.0.0.1", port, name="www.check.test."), 0.5)).ok:
                break
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dns_check_against_dnsmasq(dnsmasq: int) -> None:
    ok = asyncio.run(run(Check("dns", "127.0.0.1", dnsmasq, name="www.check.test."), 2.0))
    assert ok.ok and ok.rtt_ms is not None
    missing = asyncio.run(run(Check("dns", "127.0.0.1", dnsmasq, name="nothing.test."), 2.0))
    assert not missing.ok and "for nothing.test." in (missing.error or "")


def _daemon(conf: str, ping: link.ProbeResult, results: dict[str, bool]) -> Daemon:
    async def probe(target: str, count: int, timeout: float, urgent: bool = True) -> link.ProbeResult:
        return ping

    async def check(c: Check, timeout: float) -> CheckResult:
        ok = results[c.text]
        return CheckResult(c.text, ok, 1.0 if ok else None, None if ok else "refused")

    return Daemon(config.parse(conf), world=World(probe=probe, check=check))


@pytest.mark.parametrize("icmp_ok, checks, up", [
    (False, {"tcp://192.0.2.11:22": True, "tcp://192.0.2.11:80": False}, True),  # a service answers
    (True, {"tcp://192.0.2.11:22": False, "tcp://192.0.2.11:80": False}, True),  # ICMP answers
    (False, {"tcp://192.0.2.11:22": False, "tcp://192.0.2.11:80": False}, False),  # nothing does
])
def test_any_answer_is_life(icmp_ok: bool, checks: dict[str, bool], up: bool) -> None:
    conf = f"[peer:{KEY}]\ncheck = tcp://192.0.2.11:22 tcp://192.0.2.11:80\n"
    ping = link.ProbeResult(ok=icmp_ok, rtt_ms=0.5 if icmp_ok else None, reason="" if icmp_ok else "no reply")
    daemon = _daemon(conf, ping, checks)
    pid = ("wg0", KEY)
    result = asyncio.run(daemon.actions.probe_with_checks(pid, "192.0.2.11", daemon.tracker.settings(pid)))
    assert result.ok is up
    if not up:
        assert result.reason == ("tcp://192.0.2.11:22: refused; tcp://192.0.2.11:80: refused; icmp: no reply")


def test_checks_only_never_send_icmp() -> None:
    conf = f"[peer:{KEY}]\ncheck = tcp://192.0.2.11:22\nicmp = no\n"

    async def probe(target: str, count: int, timeout: float, urgent: bool = True) -> link.ProbeResult:
        raise AssertionError("ICMP sent although icmp = no")

    async def check(c: Check, timeout: float) -> CheckResult:
        return CheckResult(c.text, True, 2.0)

    daemon = Daemon(config.parse(conf), world=World(probe=probe, check=check))
    pid = ("wg0", KEY)
    result = asyncio.run(daemon.actions.probe_with_checks(pid, None, daemon.tracker.settings(pid)))
    assert result.ok and result.rtt_ms == 2.0
