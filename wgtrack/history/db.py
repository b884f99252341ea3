"""Opening the history store: sqlite in WAL mode, its schema versioned by ``user_version`` and
migrated forward one step at a time from the first. A file that is not ours (another
application, or corrupt) is moved aside with a log line and a new store started; a store made
by a newer wgtrack is refused, never downgraded."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from wgtrack.errors import WgtrackError

log = logging.getLogger(__name__)

APPLICATION_ID = 0x77677472  # "wgtr": PRAGMA application_id, so that a foreign sqlite file is told apart
# sqlite's page cache per connection. Its default, 2 MiB, was 2 MB of the daemon's RSS at
# 10,000 peers; the writer's pages are written once a cycle and read back rarely (roll-ups,
# figures), and the OS page cache holds the file anyway.
CACHE_KIB = 256
BUSY_TIMEOUT_MS = 5_000  # a reader (wgtrack history) holding a lock: the writer waits this long at most

# Each step takes the schema from version N to N+1. Never edit a released step: add one.
MIGRATIONS: tuple[str, ...] = (
    # 1: state changes, endpoints, sessions, hourly and daily roll-ups, each peer's last state.
    """
    CREATE TABLE transitions (id INTEGER PRIMARY KEY, time REAL NOT NULL, iface TEXT NOT NULL,
        key TEXT NOT NULL, old TEXT, new TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '');
    CREATE INDEX transitions_peer ON transitions (iface, key, time);
    CREATE INDEX transitions_time ON transitions (time);
    CREATE TABLE endpoints (id INTEGER PRIMARY KEY, time REAL NOT NULL, iface TEXT NOT NULL,
        key TEXT NOT NULL, old TEXT, new TEXT NOT NULL, kind TEXT NOT NULL);
    CREATE INDEX endpoints_peer ON endpoints (iface, key, time);
    CREATE INDEX endpoints_time ON endpoints (time);
    CREATE TABLE sessions (id INTEGER PRIMARY KEY, iface TEXT NOT NULL, key TEXT NOT NULL,
        start REAL NOT NULL, end REAL);
    CREATE INDEX sessions_peer ON sessions (iface, key, start);
    CREATE TABLE hourly (hour INTEGER NOT NULL, iface TEXT NOT NULL, key TEXT NOT NULL,
        rx INTEGER NOT NULL, tx INTEGER NOT NULL, up_s REAL NOT NULL, degraded_s REAL NOT NULL,
        down_s REAL NOT NULL, idle_s REAL NOT NULL, PRIMARY KEY (hour, iface, key)) WITHOUT ROWID;
    CREATE TABLE daily (day INTEGER NOT NULL, iface TEXT NOT NULL, key TEXT NOT NULL,
        rx INTEGER NOT NULL, tx INTEGER NOT NULL, up_s REAL NOT NULL, degraded_s REAL NOT NULL,
        down_s REAL NOT NULL, idle_s REAL NOT NULL, PRIMARY KEY (day, iface, key)) WITHOUT ROWID;
    CREATE TABLE peers (iface TEXT NOT NULL, key TEXT NOT NULL, name TEXT, status TEXT NOT NULL,
        since REAL NOT NULL, latest_handshake INTEGER NOT NULL, endpoint TEXT,
        rx_base INTEGER NOT NULL, tx_base INTEGER NOT NULL, rx INTEGER NOT NULL, tx INTEGER NOT NULL,
        PRIMARY KEY (iface, key)) WITHOUT ROWID;
    """,
    # 2: events not yet delivered (at least once across restarts), and the store's heartbeat
    # (when wgtrack was last running: the time it was stopped is not time tracked); a peer's
    # degraded cause and whether its probe target answers, so that a restart resumes both.
    """
    CREATE TABLE outbox (id INTEGER PRIMARY KEY, section TEXT NOT NULL, item TEXT NOT NULL);
    CREATE INDEX outbox_section ON outbox (section, id);
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    ALTER TABLE peers ADD COLUMN degraded TEXT;
    ALTER TABLE peers ADD COLUMN target TEXT;
    """,
)
VERSION = len(MIGRATIONS)


class HistoryError(WgtrackError):
    """The store cannot be used (a newer schema, a path that cannot be a file)."""


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode): committed when the block
    ends, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def versions(conn: sqlite3.Connection) -> tuple[int, int]:
    """(application_id, user_version); sqlite3.DatabaseError when the file is not a database."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return int(app), int(version)


def _ours(conn: sqlite3.Connection) -> str | None:
    """Why the opened file is not a usable store of ours (None: it is, or it is new and empty)."""
    app, version = versions(conn)
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app == 0 and version == 0 and tables == 0:
        return None  # a new, empty database
    if app != APPLICATION_ID:
        return f"not a wgtrack store (application_id {app:#x})"
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    return None if check == "ok" else f"corrupt ({check})"


def move_aside(path: Path, why: str) -> Path:
    """Rename a file that cannot be used, with its WAL and shared memory; returns the new name."""
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    log.error("history store %s: %s; moved aside to %s, starting a new store", path, why, aside)
    return aside


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy timeout."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    return conn


def _usable(path: Path) -> sqlite3.Connection | None:
    """A connection to the store at ``path``, or None after moving an unusable file aside."""
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        why = _ours(conn)
    except sqlite3.OperationalError as exc:  # locked, cannot be opened: the file may be fine, leave it
        if conn is not None:
            conn.close()
        raise HistoryError(f"history store {path}: cannot be opened: {exc}") from None
    except sqlite3.DatabaseError as exc:  # "file is not a database", a torn header
        why = f"unreadable ({exc})"
    if why is None and conn is not None:
        return conn
    if conn is not None:
        conn.close()
    move_aside(path, why or "unusable")
    return None


def open_store(path: Path) -> sqlite3.Connection:
    """The store at ``path``, migrated to ``VERSION`` (blocking: call it off the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = _usable(path)
    if conn is None:
        conn = _usable(path)
        if conn is None:
            raise HistoryError(f"history store {path}: cannot be made usable, even after moving the old file aside")
    _, version = versions(conn)
    if version > VERSION:
        conn.close()
        raise HistoryError(f"history store {path}: schema version {version} was written by a newer wgtrack "
                           f"(this one knows up to {VERSION}); refusing to touch it: upgrade wgtrack, or move "
                           f"the file away to start a new store")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a committed transaction survives a kill -9 (it is in the WAL file);
    # only a power loss may take the last ones back. It never corrupts.
    conn.execute("PRAGMA synchronous = NORMAL")
    migrate(conn, version)
    return conn


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Apply every step after ``version``, each in its own transaction with its version."""
    if version == 0:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for number in range(version, VERSION):
        with transaction(conn):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        if number:
            log.info("history store: schema migrated to version %d", number + 1)
