"""``kill -9`` at 100 random moments of a lab run in which a link breaks and heals over and over
(issue 23, part 5). After each kill the store must pass ``PRAGMA integrity_check``, its heartbeat
must be at most a cycle or two behind the kill (so at most the last cycle's changes are
missing), and the next start must read it back (never move it aside)."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import write_config
from tests.lab import Lab

pytestmark = pytest.mark.lab

KILLS = 100
CYCLE_S = 0.5


def test_kill_9_at_random_moments_never_corrupts_or_loses_more_than_a_cycle(lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "history.db"
    conf = write_config(tmp_path / "wgtrack.conf", tmp_path / "wgtrack.lp", cycle_time=CYCLE_S, ping_interval=1,
                        ping_failafternum=1, ping_timeout=0.3, wg_config_dir=lab.wg_config_dir, loglevel="info")
    conf.write_text(conf.read_text() + f"[history]\npath = {store}\n")
    rng = random.Random(23)
    stop = threading.Event()

    def flap() -> None:  # b breaks and heals every 1-3 s, for the whole run (bounded by `stop`)
        broken = False
        for _ in range(10_000):
            if stop.wait(rng.uniform(1.0, 3.0)):
                break
            (lab.heal if broken else lab.blackhole)("b")
            broken = not broken
        if broken:
            lab.heal("b")

    flapper = threading.Thread(target=flap, daemon=True)
    flapper.start()
    lags: list[float] = []
    log = tmp_path / "log"
    try:
        for n in range(KILLS):
            proc = lab.daemon(conf, stderr=log)
            time.sleep(rng.uniform(0.2, 3.0))
            killed_at = time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", f"kill {n}"
                alive = conn.execute("SELECT value FROM meta WHERE name = 'alive'").fetchone()
            if alive is not None:
                lags.append(killed_at - float(alive[0]))
    finally:
        stop.set()
        flapper.join(10)
    text = log.read_text()
    assert "moved aside" not in text, text[-3000:]
    assert not list(tmp_path.glob("history.db.bad-*"))
    with sqlite3.connect(store) as conn:
        changes = conn.execute("SELECT count(*) FROM transitions").fetchone()[0]
    lags.sort()
    print(f"{KILLS} kills: integrity ok; heartbeat behind the kill: median {lags[len(lags) // 2]:.2f} s, "
          f"max {lags[-1]:.2f} s over {len(lags)} runs that wrote one; {changes} state changes kept")
    assert changes > 0
    # Runs killed after their first cycle: the heartbeat is at most two cycles (and a start's
    # read) behind the kill, so only the last cycle's changes can be missing.
    late = [lag for lag in lags if lag < 10]
    assert late and max(late) < 2 * CYCLE_S + 1.0, lags
