"""The Debian package: built with dpkg-buildpackage (unit tests run at build time), checked by
lintian and systemd-analyze, installed with dpkg -i, run against the lab, then purged."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import write_config
from tests.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.package]

REPO = Path(__file__).resolve().parent.parent
# Debian's own tools and python3, never a developer's pyenv or venv first in PATH.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def sh(*args: str, cwd: Path | None = None, timeout: float = 120,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=SYSTEM_ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build from a clean copy of the tracked files (dpkg-buildpackage writes into ..)."""
    top = tmp_path_factory.mktemp("deb")
    src = top / "wgtrack"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target)
    sh("dpkg-buildpackage", "-us", "-uc", "-b", cwd=src, timeout=1200)
    (built,) = top.glob("wgtrack_*_all.deb")
    return built


def test_lintian_reports_no_errors(deb: Path) -> None:
    out = sh("lintian", str(deb), check=False, timeout=300)
    errors = [line for line in out.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], out.stdout


def test_install_check_run_in_lab_and_purge(deb: Path, lab: Lab, tmp_path: Path) -> None:
    try:
        sh("dpkg", "-i", str(deb))
        assert Path("/usr/bin/wgtrack").exists()
        verify = sh("systemd-analyze", "verify", "/lib/systemd/system/wgtrack.service", check=False)
        assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr
        check = sh("/usr/bin/wgtrack", "--check-config", "/etc/wgtrack.conf")
        assert "/etc/wgtrack.conf: configuration OK" in check.stdout
        out = tmp_path / "wgtrack.lp"
        conf = write_config(tmp_path / "wgtrack.conf", out, ping_interval=1, ping_timeout=0.5,
                            wg_config_dir=lab.wg_config_dir)
        proc = lab.spawn_in_mon(["/usr/bin/wgtrack", "-c", str(conf), "--once"], stderr=tmp_path / "log")
        assert proc.wait(60) == 0, (tmp_path / "log").read_text()
        peers = lp.peers(out.read_text())
        assert {p.fields["status"] for p in peers.values()} == {"up:ok"} and len(peers) == 3
        assert all("rtt_ms" in p.fields for p in peers.values())  # Debian's icmplib probes too
    finally:
        sh("dpkg", "--purge", "wgtrack", check=False)
    assert not Path("/usr/bin/wgtrack").exists()
    assert not Path("/etc/wgtrack.conf").exists()
