"""The daemon's side of the history store: once a cycle, what the journal noted (and the
outbox's puts and deliveries) becomes one batch for the writer, with the heartbeat; once an
hour, the roll-up and each peer's counters; every few minutes, the availability figures the
status outputs show. Nothing here waits for the disk."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from wgtrack.history import db, reading, rollup
from wgtrack.history.journal import Change, Journal
from wgtrack.history.writer import Batch, Writer

if TYPE_CHECKING:
    from wgtrack.history.availability import Figures
    from wgtrack.history.outbox import Outbox
    from wgtrack.snapshot import PeerView, Snapshot

log = logging.getLogger("wgtrack.history")

FIGURES_S = 300.0  # availability figures are read again this often

TRANSITION = "INSERT INTO transitions (time, iface, key, old, new, reason) VALUES (?, ?, ?, ?, ?, ?)"
PEER = "INSERT OR REPLACE INTO peers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
OPEN_SESSION = ("INSERT INTO sessions (iface, key, start) SELECT ?1, ?2, ?3 WHERE NOT EXISTS "
                "(SELECT 1 FROM sessions WHERE iface = ?1 AND key = ?2 AND end IS NULL)")
CLOSE_SESSION = "UPDATE sessions SET end = ?3 WHERE iface = ?1 AND key = ?2 AND end IS NULL"
ENDPOINT = "INSERT INTO endpoints (time, iface, key, old, new, kind) VALUES (?, ?, ?, ?, ?, ?)"
PEER_ENDPOINT = "UPDATE peers SET endpoint = ? WHERE iface = ? AND key = ?"
HEARTBEAT = "INSERT OR REPLACE INTO meta VALUES ('alive', ?)"
COUNTERS = ("UPDATE peers SET latest_handshake = ?, endpoint = ?, rx_base = ?, tx_base = ?, rx = ?, tx = ?, "
            "target = ? WHERE iface = ? AND key = ?")


def _up(status: str | None) -> bool:
    return status is not None and status.startswith("up")


def _session(c: Change) -> str | None:
    """A session runs from the handshake that brought the link up to the last handshake before
    it went down (or was removed); idle does not end one."""
    status = c.row.status
    if _up(status) and not _up(c.old):
        return OPEN_SESSION
    if (status.startswith("down") or status == "removed") and c.old != status:
        return CLOSE_SESSION
    return None


def _session_row(c: Change) -> tuple[object, ...]:
    return c.row.iface, c.row.key, float(c.row.latest_handshake or c.time)


def _sessions(batch: Batch, changes: Sequence[Change]) -> None:
    """Each run of changes that open (or close) sessions, in order: a session may open and
    close within one batch. The rows are made when written (a first cycle opens one a peer)."""
    start, statement = 0, None
    for at, c in enumerate(changes):
        this = _session(c)
        if this != statement:
            if statement is not None:
                batch.add_made(statement, changes[start:at], _session_row)
            start, statement = at, this
    if statement is not None:
        batch.add_made(statement, changes[start:], _session_row)


def _write_counters(conn: sqlite3.Connection, rows: Iterator[tuple[object, ...]]) -> None:
    with db.transaction(conn):
        conn.executemany(COUNTERS, rows)


def _transition(c: Change) -> tuple[object, ...]:
    return c.time, c.row.iface, c.row.key, c.old, c.row.status, c.reason


def _peer(c: Change) -> tuple[object, ...]:
    return c.row.values()


def _batch(changes: Sequence[Change], endpoints: list[tuple[float, str, str, str | None, str, str]], outbox: Batch,
           now: float) -> Batch:
    """One cycle's rows, in order: changes, sessions, endpoints, the outbox, the heartbeat."""
    batch = Batch()
    batch.add_made(TRANSITION, changes, _transition)
    batch.add_made(PEER, changes, _peer)
    _sessions(batch, changes)
    batch.add(ENDPOINT, endpoints)
    batch.add(PEER_ENDPOINT, [(new, iface, key) for _t, iface, key, _old, new, _kind in endpoints])
    batch.writes += outbox.writes
    batch.add(HEARTBEAT, [(repr(now),)])
    return batch


class Recorder:
    """Feeds the writer; ``figures`` are the last availability figures read."""

    def __init__(self, writer: Writer, journal: Journal, outbox: Outbox, retention_s: float,
                 wall: Callable[[], float]) -> None:
        self.writer, self.journal, self.outbox, self.retention_s = writer, journal, outbox, retention_s
        now = wall()
        self._hour = int(now // rollup.HOUR_S)
        self._figures_at = -1e18
        self.figures: Figures | None = None
        self.writer.call(self._refresh)

    def cycle(self, snap: Snapshot, stopping: bool = False) -> None:
        """One cycle's batch; the roll-up when an hour has ended (and the counters on a stop).
        On the loop only the hand-over: the rows are made on the writer's thread (a big hub's
        first cycle notes 50,000 changes)."""
        now = snap.time_ns / 1e9
        changes, endpoints = self.journal.drain()
        outbox = Batch()
        self.outbox.drain_into(outbox)
        then: Callable[[], None] | None = None
        hour = int(now // rollup.HOUR_S)
        if hour > self._hour or stopping:
            # On a stop, the roll-up goes to now: the next start has nothing left to catch up.
            ended = now if stopping else float(hour * rollup.HOUR_S)
            self._hour = hour
            interfaces = snap.interfaces
            then = lambda: self._hourly([v for i in interfaces for v in i.peers], ended, now)  # noqa: E731
        elif now - self._figures_at >= FIGURES_S:
            self._figures_at = now
            then = self._refresh
        self.writer.submit(lambda: _batch(changes, endpoints, outbox, now), then)

    # ---- on the writer's thread ----

    def _hourly(self, views: list[PeerView], ended: float, now: float) -> None:
        """Each peer's counters (what a restart continues from) and its bytes since the last
        roll-up; the roll-up to the hour that ended; rows past the retention deleted."""
        traffic: dict[tuple[str, str], tuple[int, int]] = {}
        # The totals as last written (the store, not memory: a hub's 50,000 pairs once an hour,
        # not for ever); a peer first written now has no bytes before.
        before = {(iface, key): (rx, tx) for iface, key, rx, tx in
                  self.writer.conn.execute("SELECT iface, key, rx_base + rx, tx_base + tx FROM peers")}

        def counters() -> Iterator[tuple[object, ...]]:  # one at a time, as sqlite takes them
            for view in views:
                pid = (view.interface, view.public_key)
                rx, tx = view.rx_bytes, view.tx_bytes
                old = before.get(pid)
                if old is not None and (rx != old[0] or tx != old[1]):
                    traffic[pid] = (max(0, rx - old[0]), max(0, tx - old[1]))
                base_rx, base_tx = view.counter_base
                yield (view.latest_handshake, view.endpoint, base_rx, base_tx, rx - base_rx, tx - base_tx,
                       view.target, pid[0], pid[1])
        self._guard(_write_counters, self.writer.conn, counters())
        start = self._guard(rollup.meta, self.writer.conn, "rolled_until") or ended
        pieces = list(rollup.slices(float(start), ended))
        for number, (a, b) in enumerate(pieces, 1):
            self._guard(rollup.rollup, self.writer.conn, a, b, traffic if number == len(pieces) else {})
        self._guard(reading.forget_before, self.writer.conn, now - self.retention_s)
        self._refresh()

    def _guard(self, fn: Callable[..., Any], *args: object) -> Any:
        """A roll-up or a retention pass that the disk refuses is tried again the next hour
        (the roll-up starts where the last one reached)."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            self.writer.failures.failed(f"{type(exc).__name__}: {exc}", "roll-up failed")
            return None

    def _refresh(self) -> None:
        try:
            self.figures = reading.figures(self.writer.conn)
        except Exception as exc:  # the figures are a view: keep the last ones
            log.warning("history store: reading availability failed: %s", exc)
