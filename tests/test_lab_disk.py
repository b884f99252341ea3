"""The history store on a real full disk (a tmpfs of 1 MiB, filled up) under the daemon tracking
the real lab (issue 23, part 5): tracking and the other outputs go on, the store's failures are
one log line, and when the disk has room again the rows kept meanwhile are written."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import lp
from tests.daemon_helpers import start_in_lab
from tests.lab import Lab, wait_until

pytestmark = pytest.mark.lab


READ = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute("PRAGMA integrity_check").fetchone()[0])
print(json.dumps(conn.execute("SELECT old, new FROM transitions WHERE key = ? ORDER BY id", (sys.argv[2],)).fetchall()))
"""


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        for _ in range(4096):  # bounded: 4 MiB at most, the tmpfs holds 1
            handle.write(b"\0" * 1024)
            handle.flush()
    return filler


def test_full_disk_costs_one_line_and_the_rows_are_written_when_room_comes_back(lab: Lab, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    # in mon's mount namespace, where the daemon runs (and seen from here through its root)
    mon = ["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-m"]
    subprocess.run([*mon, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True, timeout=20)
    inside = Path(f"/proc/{lab.hosts['mon'].wg_pid}/root") / str(disk).lstrip("/")
    try:
        store = disk / "history.db"
        daemon = start_in_lab(lab, tmp_path, f"[history]\npath = {store}\n", cycle_time=0.5, ping_interval=1,
                              ping_failafternum=2, ping_timeout=0.3, loglevel="info")
        b = lab.hosts["b"].public_key
        daemon.wait_for("all up", lambda t: all(daemon.status(lab.hosts[p].public_key) == "up:ok"
                                                for p in lab.peer_names), 30)
        filler = _fill(inside)
        lab.blackhole("b")
        daemon.wait_for("b down, tracked with the disk full", lambda t: lp.peers(t)[b].fields["status"] == "down", 30)
        wait_until("the store's failure said", lambda: "writes failing" in daemon.log(), 20)
        lab.heal("b")
        daemon.wait_for("b up again", lambda t: lp.peers(t)[b].fields["status"] == "up:ok", 30)
        cycles = daemon.cycle()
        daemon.wait_for("cycles go on", lambda t: daemon.cycle() >= cycles + 4, 20)
        assert daemon.log().count("writes failing") == 1, daemon.log()[-3000:]  # one line for the whole run
        filler.unlink()
        wait_until("writes resume", lambda: "writing again after" in daemon.log(), 20)
        rc, took = daemon.stop()
        assert rc == 0 and took < 5
        # read where the daemon wrote it (sqlite resolves /proc/<pid>/root back into this namespace)
        read = subprocess.run([*mon, sys.executable, "-c", READ, str(store), b], capture_output=True, text=True,
                              timeout=30, check=True).stdout.split("\n", 1)
        assert read[0] == "ok"
        kept = [tuple(pair) for pair in json.loads(read[1])]
        assert ("up:ok", "down") in kept and ("down", "up:ok") in kept, kept  # decided while the disk was full
    finally:
        subprocess.run([*mon, "umount", "-l", str(disk)], check=False, timeout=20)
