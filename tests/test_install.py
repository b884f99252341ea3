"""``wgtrack install`` / ``uninstall`` into a staging root (no systemctl there); the run under a
real systemd is in ``test_systemd.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import run_cli
from wgtrack.install import CONFIG, MANPAGE, MARKER, UNIT, unit_text
from wgtrack.install import main as install_main

OLD_020_UNIT = """[Unit]
Description=wgtrack service
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=wgtrack
Restart=on-failure
RestartSec=2min
StandardOutput=append:/var/log/wgtrack.log
StandardError=inherit

[Install]
WantedBy=multi-user.target
"""


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("install", "--root", str(root), *args)


def test_install_is_idempotent_and_keeps_the_operators_config(tmp_path: Path) -> None:
    first = install(tmp_path)
    assert first.returncode == 0, first.stderr
    unit = (tmp_path / UNIT).read_text()
    assert unit.startswith(MARKER) and f"ExecStart={sys.executable} -m wgtrack -c /etc/wgtrack.conf" in unit
    assert f"ExecStartPre={sys.executable} -m wgtrack --check-config /etc/wgtrack.conf" in unit
    assert "/usr/bin/wgtrack" not in unit and "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW" in unit
    assert (tmp_path / MANPAGE).read_text().startswith(".TH WGTRACK 1")
    shipped = Path(__file__).parent.parent / "etc" / "wgtrack.conf"
    assert (tmp_path / CONFIG).read_text() == shipped.read_text()
    stats = {p: (tmp_path / p).stat().st_mtime_ns for p in (UNIT, MANPAGE, CONFIG)}
    (tmp_path / CONFIG).write_text("[general]\ncycle_time = 30\n")  # the operator's edit
    second = install(tmp_path)
    assert second.returncode == 0
    assert "is up to date" in second.stdout and "kept as it is" in second.stdout and "wrote" not in second.stdout
    assert (tmp_path / CONFIG).read_text() == "[general]\ncycle_time = 30\n"
    assert all((tmp_path / p).stat().st_mtime_ns == stats[p] for p in (UNIT, MANPAGE))


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze (make test installs systemd)")
def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "wgtrack.service"
    unit.write_text(unit_text(sys.executable))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "wgtrack.service" not in done.stderr  # no complaint about our unit


def test_venv_in_a_home_stays_readable_to_the_service() -> None:
    assert "ProtectHome=read-only" in unit_text("/root/venv/bin/python")
    assert "ProtectHome=yes" in unit_text("/opt/wgtrack/bin/python")


def test_020_unit_is_replaced_and_kept_for_reference(tmp_path: Path) -> None:
    (tmp_path / UNIT).parent.mkdir(parents=True)
    (tmp_path / UNIT).write_text(OLD_020_UNIT)
    done = install(tmp_path, "--no-start")
    assert done.returncode == 0 and "replacing wgtrack 0.2.0's unit" in done.stdout
    assert (tmp_path / UNIT).read_text().startswith(MARKER)
    assert (tmp_path / UNIT).with_name("wgtrack.service.wgtrack-0.2.0").read_text() == OLD_020_UNIT


def test_uninstall_removes_only_what_install_wrote(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    done = run_cli("uninstall", "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout
    assert not (tmp_path / UNIT).exists() and not (tmp_path / MANPAGE).exists()
    assert (tmp_path / CONFIG).exists() and "kept (yours" in done.stdout
    again = run_cli("uninstall", "--root", str(tmp_path), "--purge")
    assert again.returncode == 0 and "nothing to stop" in again.stdout and not (tmp_path / CONFIG).exists()
    (tmp_path / UNIT).write_text("[Service]\nExecStart=/usr/bin/something-else\n")  # someone else's unit
    foreign = run_cli("uninstall", "--root", str(tmp_path))
    assert foreign.returncode == 1 and "left alone" in foreign.stdout and (tmp_path / UNIT).exists()


def test_install_beside_the_debian_package_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "lib/systemd/system").mkdir(parents=True)
    (tmp_path / "lib/systemd/system/wgtrack.service").write_text("[Service]\n")
    done = install(tmp_path)
    assert done.returncode == 1 and "Debian package" in done.stdout and not (tmp_path / UNIT).exists()


def test_install_without_root_is_refused_unless_staged(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert install_main("install", []) == 1
    assert "needs root (or --root DIR)" in capsys.readouterr().err


@pytest.mark.package
def test_wheel_built_from_the_tree_carries_the_unit_config_and_man_page(tmp_path: Path) -> None:
    """A wheel built from this tree installs the real files (the sample config is a link in the
    tree; the wheel must hold its content). The wheel is installed into a directory of its own
    and run from there, never from the tree."""
    repo = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(repo)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("wgtrack-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    root = tmp_path / "root"
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import wgtrack; print(wgtrack.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=30).stdout
    assert where.startswith(str(site))
    done = subprocess.run([sys.executable, "-m", "wgtrack", "install", "--root", str(root), "--no-start"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (root / CONFIG).read_text() == (repo / "etc/wgtrack.conf").read_text()
    assert (root / MANPAGE).read_text() == (repo / "wgtrack/data/wgtrack.1").read_text()
    assert "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW" in (root / UNIT).read_text()
