"""Shared fixtures: the real WireGuard lab."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import REPO, sh
from tests.lab import Lab

DATA = Path(__file__).parent / "data"
# Files a test leaves for people to look at (the status page's screenshot): kept after the run,
# listed at the end of it.
ARTIFACTS = Path(os.environ.get("WGTRACK_TEST_ARTIFACTS", "/var/tmp/wgtrack-test-artifacts"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ARTIFACTS.is_dir():
        files = sorted(p for p in ARTIFACTS.iterdir() if p.is_file())
        if files:
            terminalreporter.section("artifacts")
            for path in files:
                terminalreporter.write_line(f"{path} ({path.stat().st_size} bytes)")


@pytest.fixture(autouse=True)
def state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own StateDirectory, for the daemons it runs in-process and as children: the
    history store they keep on by default never carries one test's peers into the next."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    return state


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab with every peer's first handshake done; removed afterwards, pass or fail."""
    missing = [tool for tool in ("wg", "wireguard-go", "dnsmasq", "nft", "nsenter") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.fail(f"the lab needs root and {missing or 'its tools'}; run `make test` as root")
    with Lab() as built:
        for peer in built.peer_names:
            built.handshake(peer)
        yield built


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Debian package, built once per run from a clean copy of the tracked files
    (dpkg-buildpackage writes into ..)."""
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


@pytest.fixture
def fakewg(tmp_path: Path) -> Path:
    """A ``wg`` that prints ``dump`` (or hangs while ``hang`` exists, writing its PID to
    ``hanging`` as it begins; fails while ``fail`` exists, printing its content to stderr when
    it has any)."""
    script = tmp_path / "fakewg"
    script.write_text(f"""#!/bin/sh
d={tmp_path}
[ -s $d/fail ] && {{ cat $d/fail >&2; exit 1; }}
[ -e $d/fail ] && {{ echo "Unable to access interface: Permission denied" >&2; exit 1; }}
[ -e $d/hang ] && {{ echo $$ > $d/hanging; exec sleep 30; }}
[ -e $d/dump ] && cat $d/dump
exit 0
""")
    script.chmod(0o755)
    (tmp_path / "dump").write_text((DATA / "lab-mixed.dump").read_text())
    return script
