"""The container image (``Containerfile``) built with podman and run against the real lab.

No registry is reached: the debootstrap rootfs that the systemd test boots is imported as
``docker.io/library/debian:12-slim`` and the build runs with ``--pull=never``. Podman on this
machine needs the vfs storage driver, cgroupfs, runc (crun refuses the host's hybrid cgroups) and
explicit ``--ulimit`` values (nofile; nproc once capabilities are dropped). Its store lives in
the test's own directory and goes with it.
The image runs in mon's network namespace with mon's WireGuard socket directory mounted, as the
DaemonSet example runs it with the host's network, and its ``/metrics`` is scraped.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.daemon_helpers import REPO
from tests.lab import Lab
from tests.nspawn import debian_rootfs

pytestmark = [pytest.mark.lab, pytest.mark.package]
NOFILE = "--ulimit=nofile=16384:16384"
# Podman asks for a process limit above this host's; without CAP_SYS_RESOURCE (the container
# keeps only NET_ADMIN and NET_RAW) runc cannot raise it, so a modest one is given.
NPROC = "--ulimit=nproc=1024:1024"


class Podman:
    def __init__(self, top: Path) -> None:
        self.base = ["podman", f"--root={top / 'root'}", f"--runroot={top / 'run'}", "--storage-driver=vfs",
                     "--cgroup-manager=cgroupfs", "--runtime=runc"]


    def __call__(self, *args: str, timeout: float = 120, check: bool = True,
                 input_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        stdin = open(input_file, "rb") if input_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            done = subprocess.run([*self.base, *args], stdin=stdin, capture_output=True, timeout=timeout)
        finally:
            if input_file:
                stdin.close()  # type: ignore[union-attr]
        out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                          done.stderr.decode(errors="replace"))
        if check and out.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {out.returncode}:\n{out.stdout[-2000:]}\n"
                                 f"{out.stderr[-3000:]}")
        return out


@pytest.fixture
def podman() -> Iterator[Podman]:
    if not shutil.which("podman") or not shutil.which("runc"):
        pytest.fail("needs podman and runc (make test installs them)")
    top = Path(tempfile.mkdtemp(prefix="wgtrack-podman-", dir="/var/tmp"))
    try:
        yield Podman(top)
    finally:
        # vfs layers hold mounts only while containers run; the containers are gone by now
        subprocess.run(["podman", f"--root={top / 'root'}", f"--runroot={top / 'run'}", "--storage-driver=vfs",
                        "system", "reset", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(top, ignore_errors=True)


def test_container_image_builds_offline_and_serves_the_lab(lab: Lab, podman: Podman, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(debian_rootfs()), "-cf", str(tarball), "."], check=True, timeout=300)
    podman("import", "-", "docker.io/library/debian:12-slim", input_file=tarball, timeout=300)
    tarball.unlink()
    podman("build", "--pull=never", NOFILE, "-t", "localhost/wgtrack:test", "-f", "Containerfile", str(REPO),
           timeout=900)

    name = f"{lab.prefix}wgtrack"
    mon = lab.hosts["mon"]
    podman("run", "-d", "--name", name, f"--network=ns:/run/netns/{mon.ns}", NOFILE, NPROC,
           "--cap-drop=all", "--cap-add=NET_ADMIN", "--cap-add=NET_RAW",
           "-v", f"{lab.run_dir('mon')}:/var/run/wireguard",
           "-v", f"{lab.wg_config_dir}:/etc/wireguard:ro", "localhost/wgtrack:test")
    try:
        deadline, metrics = time.monotonic() + 60, ""
        keys = [lab.hosts[p].public_key for p in lab.peer_names]
        while time.monotonic() < deadline:
            try:
                metrics = lab.http_get("mon", "http://127.0.0.1:9586/metrics")
            except RuntimeError:
                metrics = ""
            if peer_up(metrics) == ["1", "1", "1"]:
                break
            time.sleep(1)
        logs = podman("logs", name, check=False).stderr[-3000:]
        assert peer_up(metrics) == ["1", "1", "1"], (metrics[-3000:], logs)
        assert all(f'public_key="{key}"' in metrics for key in keys)
        assert 'friendly_name="peer-a"' in metrics  # the mounted wg-quick configs were read
        assert "wgtrack_peer_probe_rtt_seconds_count{" in metrics  # probes ran with the container's NET_RAW
        page = lab.http_get("mon", "http://127.0.0.1:9586/")
        assert "<h1>wgtrack" in page and "peer-b" in page
        status = podman("exec", name, "python3", "-m", "wgtrack", "status", check=False)
        assert status.returncode == 0 and "peer-c" in status.stdout, status
    finally:
        stopped = time.monotonic()
        podman("stop", "-t", "10", name, check=False)
        took = time.monotonic() - stopped
        logs = podman("logs", name, check=False).stderr
        podman("rm", "-f", name, check=False)
    assert "stopped cleanly" in logs and took < 10, (took, logs[-2000:])  # SIGTERM ends it, no SIGKILL


def peer_up(metrics: str) -> list[str]:
    """The values of the wgtrack_peer_up samples."""
    return [line.rsplit(" ", 1)[1] for line in metrics.splitlines() if line.startswith("wgtrack_peer_up{")]


def test_daemonset_example_is_what_the_image_needs() -> None:
    docs = list(yaml.safe_load_all((REPO / "contrib/kubernetes/wgtrack-daemonset.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "DaemonSet"}
    pod = kinds["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    (container,) = pod["containers"]
    caps = container["securityContext"]["capabilities"]
    assert caps == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/wireguard"]["readOnly"] is True and "/var/run/wireguard" in mounts
    assert mounts["/etc/wgtrack.conf"]["subPath"] == "wgtrack.conf"
    host_paths = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["volumes"]}
    assert set(host_paths.values()) >= {"/etc/wireguard", "/var/run/wireguard"}
    assert container["ports"][0]["containerPort"] == 9586
    assert "[output:prometheus]" in kinds["ConfigMap"]["data"]["wgtrack.conf"]
