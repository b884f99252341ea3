"""Seconds in each state and bytes, per peer, per hour and per day: rolled up from the store's
own rows (each peer's status now and the changes since), so that a crash loses no time: the
next start rolls up the run that ended, up to its last heartbeat. Time wgtrack was not running
is in no bucket. Runs on the writer's thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping

from wgtrack.history import db

PeerId = tuple[str, str]
HOUR_S = 3600
DAY_S = 86_400

# A status value's bucket: up, degraded, down, idle (columns up_s, degraded_s, down_s, idle_s).
BUCKETS = {"up:ok": 0, "up:degraded": 1, "idle": 3}


def bucket(status: str | None) -> int | None:
    """The bucket of a status value; None for no status yet and for a removed peer."""
    if status is None:
        return None
    found = BUCKETS.get(status)
    return 2 if found is None and status.startswith("down") else found


def _timeline(status: str | None, changes: list[tuple[float, str | None, str]], a: float,
              b: float) -> list[float]:
    """Seconds in each bucket over [a, b) of one peer whose changes since ``a`` are ``changes``
    (in order) and whose status after them is ``status``."""
    secs = [0.0, 0.0, 0.0, 0.0]
    current = changes[0][1] if changes else status
    at = a
    for time, _old, new in changes:
        if time >= b:
            break
        k = bucket(current)
        if k is not None and time > at:
            secs[k] += time - at
        current, at = new, max(at, time)
    k = bucket(current)
    if k is not None and b > at:
        secs[k] += b - at
    return secs


def seconds_in_states(conn: sqlite3.Connection, a: float, b: float) -> Iterator[tuple[PeerId, list[float]]]:
    """Per peer with time in some bucket, its seconds in each over [a, b): walked back from its
    status now. One peer at a time, its changes merged in from a second cursor in the same
    order: a big hub's first hour is a change for every peer, and holding them all (with every
    peer's figures) cost the daemon 4 MB of RSS for good at 10,000 peers."""
    changes = conn.execute("SELECT iface, key, time, old, new FROM transitions WHERE time >= ? "
                           "ORDER BY iface, key, id", (a,))
    pending = next(changes, None)
    for iface, key, status in conn.execute("SELECT iface, key, status FROM peers ORDER BY iface, key"):
        pid = (iface, key)
        mine: list[tuple[float, str | None, str]] = []
        # sqlite orders text by its UTF-8 bytes, as Python orders str by code point
        while pending is not None and (pending[0], pending[1]) <= pid:
            if (pending[0], pending[1]) == pid:
                mine.append((pending[2], pending[3], pending[4]))
            pending = next(changes, None)
        secs = _timeline(status, mine, a, b)
        if any(secs):
            yield pid, secs


_ADD = ("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET rx = rx + excluded.rx, "
        "tx = tx + excluded.tx, up_s = up_s + excluded.up_s, degraded_s = degraded_s + excluded.degraded_s, "
        "down_s = down_s + excluded.down_s, idle_s = idle_s + excluded.idle_s")


def rollup(conn: sqlite3.Connection, a: float, b: float, traffic: Mapping[PeerId, tuple[int, int]]) -> int:
    """Add [a, b) (within one hour) to the hourly and daily rows, with ``traffic`` (bytes per
    peer in it); returns the rows written. One transaction, which also records how far the
    roll-ups reach (``rolled_until``)."""
    hour, day = int(a // HOUR_S), int(a // DAY_S)
    nothing, idle = (0, 0), (0.0,) * 4
    written = 0

    def rows(when: int) -> Iterator[tuple[object, ...]]:  # one at a time, as sqlite takes them
        nonlocal written
        written, left = 0, dict(traffic)
        for pid, secs in seconds_in_states(conn, a, b):
            written += 1
            yield (when, pid[0], pid[1], *left.pop(pid, nothing), *secs)
        for pid, moved in left.items():  # bytes but no time: idle throughout
            written += 1
            yield (when, pid[0], pid[1], *moved, *idle)

    with db.transaction(conn):
        for table, when in (("hourly", hour), ("daily", day)):
            conn.executemany(_ADD.format(table=table), rows(when))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('rolled_until', ?)", (repr(b),))
    return written


def slices(a: float, b: float) -> Iterable[tuple[float, float]]:
    """[a, b) cut at the hours."""
    while a < b:
        end = min(b, (a // HOUR_S + 1) * HOUR_S)
        yield a, end
        a = end


def meta(conn: sqlite3.Connection, name: str) -> float | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return float(row[0]) if row else None


def catch_up(conn: sqlite3.Connection) -> int:
    """Roll up the run that ended (a stop or a crash) from where the roll-ups reached to its
    last heartbeat; returns the rows written."""
    start, alive = meta(conn, "rolled_until"), meta(conn, "alive")
    if start is None or alive is None or alive <= start:
        return 0
    return sum(rollup(conn, a, b, {}) for a, b in slices(start, alive))
