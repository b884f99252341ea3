"""What the daemon loads, and what it leaves alone: a module loaded is RSS kept for good
(docs/scale.md, "Memory at a hub")."""

from __future__ import annotations

import subprocess
import sys

from tests.lab import REPO

# The modules a default config's daemon imports, and its argument parser as it is built.
DAEMON = ("import sys, wgtrack.daemon, wgtrack.outputs.json_status, wgtrack.outputs.influx_file, wgtrack.cli; "
          "wgtrack.cli.build_parser().parse_args(['-c', '/dev/null']); ")


def _loaded(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", DAEMON + code], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    return done.stdout.split()


def test_without_a_history_store_sqlite_is_never_loaded() -> None:
    """A store that is switched off costs no RSS (sqlite: 1.3 MB measured); the store loads it."""
    assert _loaded("print('sqlite3' in sys.modules); import wgtrack.history.store; "
                   "print('sqlite3' in sys.modules)") == ["False", "True"]


def test_the_argument_parser_loads_no_shutil() -> None:
    """argparse asks shutil for the terminal's width unless told it (shutil brings bz2 and lzma:
    0.5 MB); the help is still wrapped to COLUMNS."""
    assert _loaded("print('shutil' in sys.modules, 'bz2' in sys.modules)") == ["False", "False"]
    done = subprocess.run([sys.executable, "-m", "wgtrack", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "50"})
    assert max(map(len, done.stdout.splitlines())) <= 50 and "--check-config" in done.stdout
