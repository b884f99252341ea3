"""The history store as the daemon uses it: opened (and read back) off the loop before the first
cycle, fed once a cycle, closed within the stop deadline. A store that cannot be opened (a
newer schema, a path that cannot be written) is said once, clearly, and wgtrack runs without
history: tracking never depends on the disk."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wgtrack.errors import WgtrackError
from wgtrack.history import db, memory
from wgtrack.history.journal import Journal
from wgtrack.history.outbox import Outbox
from wgtrack.history.recorder import Recorder
from wgtrack.history.writer import Batch, Writer
from wgtrack.workers import Workers

if TYPE_CHECKING:
    from wgtrack.config import Config
    from wgtrack.snapshot import Snapshot

log = logging.getLogger("wgtrack.history")

OPEN_TIMEOUT_S = 20.0  # opening, migrating, rolling up the last run and reading it back
DEFAULT_DIR = Path("/var/lib/wgtrack")


def default_path() -> Path:
    """systemd's StateDirectory= (``$STATE_DIRECTORY``), else /var/lib/wgtrack."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return (Path(state) if state else DEFAULT_DIR) / "history.db"


def path_of(config: Config) -> Path:
    return config.history_path or default_path()


def _open(path: Path, now: float) -> tuple[sqlite3.Connection, memory.Memory]:
    conn = db.open_store(path)
    try:
        return conn, memory.load(conn, now)
    except BaseException:
        conn.close()
        raise


class History:
    """The writer, the journal the tracker notes into, the outbox the outputs keep, the recorder."""

    def __init__(self, writer: Writer, remembered: memory.Memory, retention_s: float,
                 wall: Callable[[], float]) -> None:
        self.writer, self.memory = writer, remembered
        self.journal = Journal()
        self.outbox = Outbox(remembered)
        self.recorder = Recorder(writer, self.journal, self.outbox, retention_s, wall)

    @classmethod
    async def open(cls, config: Config, wall: Callable[[], float]) -> History | None:
        if not config.history_enabled:
            return None
        path = path_of(config)
        started = time.monotonic()
        try:
            conn, remembered = await Workers("history-open").run(_open, path, wall(), timeout_s=OPEN_TIMEOUT_S)
        except (WgtrackError, sqlite3.Error, OSError, TimeoutError) as exc:
            why = f"not opened within {OPEN_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else str(exc)
            log.error("history store: %s; running without history (no restart memory, no availability)", why)
            return None
        stopped = remembered.stopped_at
        log.info("history store %s: %d peer(s) remembered%s, %d undelivered item(s), opened in %.2f s", path,
                 len(remembered.peers), f", last running {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stopped))}"
                 if stopped else " (a new store)", sum(map(len, remembered.outbox.values())),
                 time.monotonic() - started)
        return cls(Writer(conn, path), remembered, config.history_retention_s, wall)

    def cycle(self, snap: Snapshot, stopping: bool = False) -> None:
        self.recorder.cycle(snap, stopping)

    async def close(self, deadline_s: float) -> None:
        """Write what is queued within ``deadline_s``, with what the outputs kept in the outbox
        as they closed; a disk that hangs is left behind."""
        last = Batch()
        self.outbox.drain_into(last)
        if last:
            self.writer.submit(last)
        try:
            done = await Workers("history-close").run(self.writer.close, deadline_s, timeout_s=deadline_s + 0.5)
        except TimeoutError:
            done = False
        if not done:
            log.warning("history store: not all writes done within %g s on stop", deadline_s)
