"""The history store's one writer: a thread of its own that applies batches, one transaction
each. The event loop only hands batches over (``submit``) and never waits for the disk.

A failure (disk full, a read-only file system, an I/O error) costs one log line per run of
failures: the batch is kept and tried again with the next, within ``MAX_PENDING_ROWS`` (the
oldest whole batches go first beyond, counted), so that tracking and every other output go on
and the writes resume, in order, when the disk is back."""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgtrack.history import db
from wgtrack.retry import FailureRun

log = logging.getLogger("wgtrack.history")

MAX_PENDING_ROWS = 500_000  # rows kept while the disk refuses them (some 100 MB at most)


@dataclass(slots=True)
class Batch:
    """One cycle's writes, in order: (statement, items, how an item becomes its row). Rows are
    made as sqlite takes them (again on a retry), from items that exist anyway: a big hub's
    first cycle notes 50,000 changes, and their rows never all exist at once."""

    writes: list[tuple[str, Sequence[Any], Callable[[Any], tuple[Any, ...]] | None]] = field(default_factory=list)

    def add(self, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if not rows:
            return
        last = self.writes[-1] if self.writes else None
        if last is not None and last[0] == statement and last[2] is None and isinstance(last[1], list):
            last[1].extend(rows)  # runs of one statement go as one executemany
        else:
            self.writes.append((statement, rows, None))

    def add_made(self, statement: str, items: Sequence[Any], row: Callable[[Any], tuple[Any, ...]]) -> None:
        """``row(item)`` for each item, made when written."""
        if items:
            self.writes.append((statement, items, row))

    @property
    def rows(self) -> int:
        return sum(len(items) for _, items, _ in self.writes)

    def __bool__(self) -> bool:
        return bool(self.writes)


class Writer:
    """Owns the connection; every method but ``submit`` and ``close`` runs on its thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path
        self._pending: collections.deque[Batch] = collections.deque()
        self._pending_rows = 0
        self.dropped_rows = 0
        self.failures = FailureRun(log, f"history store {path}", logging.ERROR)
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._running = False
        self._thread = threading.Thread(target=self._serve, name="history", daemon=True)
        self._thread.start()

    # ---- the loop's side: hand over, never wait ----

    def submit(self, batch: Batch | Callable[[], Batch], then: Callable[[], None] | None = None) -> None:
        """Queue ``batch`` (or what makes it, called on the writer's thread), and ``then``, run
        there after it."""
        def job() -> None:
            self._write(batch if isinstance(batch, Batch) else batch())
            if then is not None:
                then()
        self.call(job)

    def call(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()

    def idle(self) -> bool:
        """Nothing queued and nothing being written."""
        with self._cond:
            return not self._jobs and not self._running

    def close(self, timeout_s: float) -> bool:
        """Finish the queued jobs within ``timeout_s``; True when all were done."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout_s)
        done = not self._thread.is_alive()
        if done:
            self.conn.close()
        return done

    # ---- the writer's thread ----

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
                self._running = True
            try:
                job()
            except Exception:  # a bug must not kill the writer: the next batch tries again
                log.exception("history store: a write job failed")
            finally:
                with self._cond:
                    self._running = False

    def _write(self, batch: Batch) -> None:
        if batch:
            self._pending.append(batch)
            self._pending_rows += batch.rows
        self._bound()
        if not self._pending:
            return
        try:
            with db.transaction(self.conn):
                for pending in self._pending:
                    for statement, items, row in pending.writes:
                        self.conn.executemany(statement, items if row is None else map(row, items))
        except sqlite3.Error as exc:
            self.failures.failed(f"{type(exc).__name__}: {exc}", f"writes failing, {self._pending_rows} row(s) kept "
                                                                 "to retry")
            return
        self._pending.clear()
        self._pending_rows = 0
        self.failures.recovered("writing again")

    def _bound(self) -> None:
        while self._pending_rows > MAX_PENDING_ROWS and len(self._pending) > 1:
            oldest = self._pending.popleft()
            self._pending_rows -= oldest.rows
            if not self.dropped_rows:  # once: the failure run's own line says the rest
                log.warning("history store %s: dropping the oldest rows kept (over %d) while writes fail",
                            self.path, MAX_PENDING_ROWS)
            self.dropped_rows += oldest.rows

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read on the writer's own connection (its thread only)."""
        return list(self.conn.execute(sql, params))
