"""The HTTP client's proxy rules match urllib's, without importing urllib.request (2 MB)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from wgtrack.httpclient import _proxy_for, proxy_bypassed

NO_PROXY = ["", "*", "example.test", ".example.test", "a.test,b.test", " a.test , .b.test ", "example.test:8080",
            "EXAMPLE.test", "198.51.100.7", "test"]
HOSTS = ["example.test", "x.example.test", "xexample.test", "a.test", "b.test", "c.b.test", "198.51.100.7",
         "Example.TEST", "other.test", "test"]


@pytest.mark.parametrize("no_proxy", NO_PROXY)
def test_no_proxy_means_what_it_means_to_urllib(no_proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", no_proxy)
    for host in HOSTS:
        assert proxy_bypassed(host) == bool(urllib.request.proxy_bypass_environment(host)), host  # type: ignore[attr-defined]


def test_the_lowercase_variable_wins_and_loopback_never_goes_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY"):  # package builds set a dead one
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://198.51.100.1:3128")
    monkeypatch.setenv("http_proxy", "198.51.100.2:8080")
    assert urllib.request.getproxies_environment()["http"] == "198.51.100.2:8080"
    assert _proxy_for("http", "hook.example.test") == ("198.51.100.2", 8080)
    assert _proxy_for("http", "127.0.0.1") is None
    assert _proxy_for("https", "hook.example.test") is None
    monkeypatch.setenv("no_proxy", ".example.test")
    assert _proxy_for("http", "hook.example.test") is None


def test_the_http_outputs_do_not_import_urllib_request() -> None:
    code = ("import sys, wgtrack.outputs.webhook, wgtrack.outputs.alertmanager, wgtrack.outputs.influxdb; "
            "print('urllib.request' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
