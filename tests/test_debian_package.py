"""The Debian package: built with dpkg-buildpackage (unit tests run at build time), checked by
lintian and systemd-analyze, installed with dpkg -i, run against the lab, then purged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import sh, write_config
from tests.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.package]


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
        assert all("rtt_ms" in p.fields for p in peers.values())  # the packaged prober probes too
    finally:
        sh("dpkg", "--purge", "wgtrack", check=False)
    assert not Path("/usr/bin/wgtrack").exists()
    assert not Path("/etc/wgtrack.conf").exists()
