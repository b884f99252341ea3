"""The daemon's side of the history store: once a cycle, what the journal noted (and the
outbox's puts and deliveries) becomes one batch for the writer, with the heartbeat; once an
hour, the roll-up and each peer's counters; every few minutes, the availability figures the
status outputs show. Nothing here waits for the disk."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wgtrack.history import reading, rollup
from wgtrack.history.journal import Change, Journal
from wgtrack.history.writer import Batch, Writer

if TYPE_CHECKING:
    from wgtrack.history.memory import Memory
    from wgtrack.history.outbox import Outbox
    from wgtrack.history.reading import Figures
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


def _sessions(batch: Batch, changes: list[Change]) -> None:
    """A session runs from the handshake that brought the link up to the last handshake before
    it went down (or was removed); idle does not end one."""
    for c in changes:  # in order: a session may open and close within one batch
        row = c.row
        if _up(row.status) and not _up(c.old):
            batch.add(OPEN_SESSION, [(row.iface, row.key, float(row.latest_handshake or c.time))])
        elif (row.status.startswith("down") or row.status == "removed") and c.old != row.status:
            batch.add(CLOSE_SESSION, [(row.iface, row.key, float(row.latest_handshake or c.time))])


class Recorder:
    """Feeds the writer; ``figures`` are the last availability figures read."""

    def __init__(self, writer: Writer, journal: Journal, memory: Memory, outbox: Outbox, retention_s: float,
                 wall: Callable[[], float]) -> None:
        self.writer, self.journal, self.outbox, self.retention_s = writer, journal, outbox, retention_s
        self._totals = {pid: (row.rx_base + row.rx, row.tx_base + row.tx) for pid, row in memory.peers.items()}
        now = wall()
        self._hour = int(now // rollup.HOUR_S)
        self._figures_at = -1e18
        self.figures: Figures | None = None
        self.writer.call(self._refresh)

    def cycle(self, snap: Snapshot, stopping: bool = False) -> None:
        """One cycle's batch; the roll-up when an hour has ended (and the counters on a stop)."""
        now = snap.time_ns / 1e9
        changes, endpoints = self.journal.drain()
        batch = Batch()
        batch.add(TRANSITION, [(c.time, c.row.iface, c.row.key, c.old, c.row.status, c.reason) for c in changes])
        batch.add(PEER, [c.row.values() for c in changes])
        _sessions(batch, changes)
        batch.add(ENDPOINT, endpoints)
        batch.add(PEER_ENDPOINT, [(new, iface, key) for _t, iface, key, _old, new, _kind in endpoints])
        self.outbox.drain_into(batch)
        batch.add(HEARTBEAT, [(repr(now),)])
        hour = int(now // rollup.HOUR_S)
        if hour > self._hour or stopping:
            # On a stop, the roll-up goes to now: the next start has nothing left to catch up.
            ended = now if stopping else float(hour * rollup.HOUR_S)
            self._hour = hour
            views = [view for iface in snap.interfaces for view in iface.peers]
            self.writer.submit(batch, lambda: self._hourly(views, ended, now))
        elif now - self._figures_at >= FIGURES_S:
            self._figures_at = now
            self.writer.submit(batch, self._refresh)
        else:
            self.writer.submit(batch)

    # ---- on the writer's thread ----

    def _hourly(self, views: list[PeerView], ended: float, now: float) -> None:
        """Each peer's counters (what a restart continues from) and its bytes since the last
        roll-up; the roll-up to the hour that ended; rows past the retention deleted."""
        traffic: dict[tuple[str, str], tuple[int, int]] = {}
        counters = []
        for view in views:
            pid = (view.interface, view.public_key)
            rx, tx = view.rx_bytes, view.tx_bytes
            before = self._totals.get(pid, (rx, tx))
            if rx != before[0] or tx != before[1]:
                traffic[pid] = (max(0, rx - before[0]), max(0, tx - before[1]))
            self._totals[pid] = (rx, tx)
            base_rx, base_tx = view.counter_base
            counters.append((view.latest_handshake, view.endpoint, base_rx, base_tx, rx - base_rx, tx - base_tx,
                             view.target, pid[0], pid[1]))
        batch = Batch()
        batch.add(COUNTERS, counters)
        self.writer._write(batch)
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
