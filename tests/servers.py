"""Start real servers from Debian packages on loopback, on free ports, for one test."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.lab import REPO, Lab


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(url: str, data: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def influxdb_v1(workdir: Path) -> Iterator[str]:
    """InfluxDB 1.6 (Debian ``influxdb``) on a free loopback port; yields its base URL."""
    if not shutil.which("influxd"):
        raise RuntimeError("influxd not found: `make test` installs Debian's influxdb")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, rpc_port = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
[monitor]
  store-enabled = false
[ifql]
  enabled = false
""")
    log = open(workdir / "influxd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(["influxd", "-config", str(conf)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http(f"{url}/ping", timeout=1)[0] == 204:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"influxd exited: {(workdir / 'influxd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("influxd did not answer /ping within 30 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def alertmanager_setup(lab: Lab, tmp_path: Path, hook_port: int, received: Path) -> tuple[str, Path]:
    """Debian's Alertmanager binary and a config routing every alert, at once and with its
    resolution, to a receiver started here (in mon's namespace) that appends to ``received``."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "make test installs Debian's prometheus-alertmanager"
    received.touch()
    lab.spawn_in_mon(["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.receiver_main", str(hook_port),
                      str(received)], stderr=tmp_path / f"receiver-{hook_port}.log")
    conf = tmp_path / "alertmanager.yml"
    conf.write_text(f"""route:
  receiver: hook
  group_by: [alertname, interface, peer]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{hook_port}/
        send_resolved: true
""")
    return binary, conf
