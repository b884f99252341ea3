"""The Prometheus exporter in-process on a free loopback port: names, health, auth, TLS."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.servers import free_port
from tests.snapshots import KEY_A, KEY_B, peer, snapshot
from wgtrack.checks import CheckResult
from wgtrack.errors import StartupError
from wgtrack.link import Status
from wgtrack.outputs.prometheus import PrometheusExporter, PrometheusSettings
from wgtrack.promtext import valid_label
from wgtrack.quality import Quality


class Running:
    """An exporter served by an event loop in a background thread."""

    def __init__(self, settings: PrometheusSettings) -> None:
        import threading

        self.exporter = PrometheusExporter("output:prometheus", settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.exporter.start(), self.loop).result(10)

    def publish(self, snap: object) -> None:
        asyncio.run_coroutine_threadsafe(self.exporter.publish(snap), self.loop).result(5)  # type: ignore[arg-type]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.exporter.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def running(port: int) -> Iterator[Running]:
    r = Running(PrometheusSettings(listen=f"127.0.0.1:{port}"))
    yield r
    r.close()


def get(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    # Loopback never goes through a proxy (package builds set http_proxy to a dead one).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_answers_before_the_first_cycle(running: Running, port: int) -> None:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert 'wgtrack_build_info{version="' in body


def test_compatible_and_new_series(running: Running, port: int) -> None:
    running.publish(snapshot(peer(friendly_labels=(("owner", "bob"), ("bad-key", "x"))),
                             peer(KEY_B, friendly_name=None, handshake_age_s=None, latest_handshake=0,
                                  status=Status.CHECKING)))
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = parsed(body)
    a_compat = frozenset({"interface": "wg0", "public_key": KEY_A, "allowed_ips": "192.0.2.11/32",
                          "friendly_name": "alice", "owner": "bob"}.items())
    assert samples[("wireguard_sent_bytes_total", a_compat)] == 5678
    assert not any("bad-key" in dict(labels) for _, labels in samples)  # invalid friendly_json keys dropped
    b_compat = frozenset({"interface": "wg0", "public_key": KEY_B, "allowed_ips": "192.0.2.11/32"}.items())
    assert samples[("wireguard_latest_handshake_seconds", b_compat)] == 0
    assert ("wireguard_latest_handshake_delay_seconds", b_compat) not in samples  # never: no age
    b_own = {"interface": "wg0", "public_key": KEY_B, "friendly_name": ""}
    assert samples[("wgtrack_peer_up", frozenset(b_own.items()))] == 0
    assert samples[("wgtrack_peer_state", frozenset({**b_own, "state": "down:checking"}.items()))] == 1
    assert samples[("wgtrack_peer_state", frozenset({**b_own, "state": "up:ok"}.items()))] == 0
    assert samples[("wgtrack_interface_peers", frozenset({"interface": "wg0", "state": "up:ok"}.items()))] == 1
    info = [dict(labels) for name, labels in samples if name == "wgtrack_peer_info"]
    assert {i["endpoint"] for i in info} == {"198.51.100.11:51820"}
    assert samples[("wgtrack_up", frozenset())] == 1


def parsed(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_renderer_matches_prometheus_client(tmp_path: Path) -> None:
    """prometheus_client, fed the same snapshot, is the oracle: same families, types, help, samples."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from tests.promoracle import SnapshotCollector
    from wgtrack.promtext import render

    measured = Quality()
    measured.record(1000.0, 9, (0.4, 0.5, 1.0, 3.2, 48.0, 5000.0, 7000.0))  # on bounds, between, past the last
    snap = snapshot(peer(friendly_labels=(("owner", 'b"o\\b'), ("site", "x\ny")), quality=measured.summary(1000.0),
                         status=Status.DEGRADED, degraded="mtu", path_mtu=1144,
                         checks=(CheckResult("tcp://192.0.2.11:22", True, 1.25),
                                 CheckResult('http://192.0.2.11:80/"x"#204', False, None, "HTTP 500"))),
                    peer(KEY_B, friendly_name=None, handshake_age_s=None, latest_handshake=0, rtt_ms=None,
                         loss=None, status=Status.BACKINGOFF, endpoint=None, diagnosis="host_unreachable", roams=2))
    collector = SnapshotCollector()
    collector.snapshot = snap
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ours, theirs = render(snap), generate_latest(registry).decode()

    def families(text: str) -> dict[str, tuple[str, str]]:
        return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}

    assert families(ours) == families(theirs)
    assert parsed(ours) == parsed(theirs)


def test_wg_failure_is_visible(running: Running, port: int) -> None:
    running.publish(snapshot(wg_ok=False, wg_error="wg show timed out"))
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    assert parsed(body)[("wgtrack_up", frozenset())] == 0
    assert "wireguard_sent_bytes_total{" not in body


def test_unknown_path_is_404(running: Running, port: int) -> None:
    assert get(f"http://127.0.0.1:{port}/nope")[0] == 404


@pytest.mark.parametrize("name,ok", [("owner", True), ("site_2", True), ("2x", False), ("__x", False),
                                     ("interface", False), ("a-b", False)])
def test_label_validation(name: str, ok: bool) -> None:
    assert valid_label(name) is ok


def test_port_in_use_is_a_clear_error_at_start_but_not_for_check_config(port: int) -> None:
    first = Running(PrometheusSettings(listen=f"127.0.0.1:{port}"))
    try:
        second = PrometheusExporter("output:prometheus", PrometheusSettings(listen=f"127.0.0.1:{port}"))
        # --check-config beside the running daemon: its own port is taken, and that is fine.
        assert second.check() == []
        with pytest.raises(StartupError, match="Address already in use"):
            asyncio.run(second.start())
    finally:
        first.close()


def make_cert(tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_tls_and_basic_auth(tmp_path: Path, port: int) -> None:
    make_cert(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                   f"basic_auth_users:\n  prom: '{hashed}'\n")
    r = Running(PrometheusSettings(listen=f"127.0.0.1:{port}", web_config=web))
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        url = f"https://127.0.0.1:{port}/metrics"
        assert get(url, context=context)[0] == 401  # unauthenticated scrape refused
        bad = base64.b64encode(b"prom:wrong").decode()
        assert get(url, {"Authorization": f"Basic {bad}"}, context)[0] == 401
        good = base64.b64encode(b"prom:s3cret").decode()
        status, body = get(url, {"Authorization": f"Basic {good}"}, context)
        assert status == 200 and "wgtrack_build_info" in body
        page = f"https://127.0.0.1:{port}/"
        assert get(page, context=context)[0] == 401  # the status page has the same auth
        status, body = get(page, {"Authorization": f"Basic {good}"}, context)
        assert status == 200 and "<h1>wgtrack" in body and "<script" not in body
        request = urllib.request.Request(page, headers={"Authorization": f"Basic {good}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        with opener.open(request, timeout=10) as response:
            # no script may run and nothing is fetched from anywhere: the page works offline
            assert response.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
            assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get(f"http://127.0.0.1:{port}/metrics")  # plain HTTP gets no answer on a TLS port
    finally:
        r.close()


def test_bad_web_config_is_a_clear_error(tmp_path: Path, port: int) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: missing.pem\n  key_file: missing.key\n")
    problems = PrometheusExporter("output:prometheus",
                                  PrometheusSettings(listen=f"127.0.0.1:{port}", web_config=web)).check()
    assert len(problems) == 1 and "cannot load" in problems[0] and "missing.pem" in problems[0]
    web.write_text("basic_auth_users:\n  prom: plaintext-password\n")
    problems = PrometheusExporter("output:prometheus",
                                  PrometheusSettings(listen=f"127.0.0.1:{port}", web_config=web)).check()
    assert problems == [f"[output:prometheus] web_config: {web}: basic_auth_users: the entry for 'prom' "
                        "is not a bcrypt hash"]
    assert "plaintext-password" not in problems[0]
