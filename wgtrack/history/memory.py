"""What a start reads back from the store: the run that ended rolled up, each peer's last state
and counters, the events not yet delivered. Runs on the writer's thread, before the first cycle."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from wgtrack.history import db, rollup
from wgtrack.history.journal import PeerRow

PeerId = tuple[str, str]


COLUMNS = ("iface, key, name, status, since, latest_handshake, endpoint, rx_base, tx_base, rx, tx, degraded, "
           "target")


class Remembered:
    """The last run's peers, each taken once, by the first dump that lists it.

    They wait in an in-memory sqlite database, not as Python objects. 10,000 rows of a dozen
    objects each were taken one by one while the first cycle made the peers' own objects among
    them; once all were taken, the memory they had held stayed scattered among the peers':
    5 MB of RSS for good at 10,000 peers. The database's pages are one block of the C heap,
    handed back whole when it is closed: when every row was taken, or by ``keep_few``."""

    def __init__(self, rows: Iterable[Sequence[object]]) -> None:
        # Made on the writer's thread, read on the loop's: never both at once.
        self._conn: sqlite3.Connection | None = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f"CREATE TABLE peers ({COLUMNS}, PRIMARY KEY (iface, key)) WITHOUT ROWID")
        with self._conn:
            self._conn.executemany(f"INSERT OR REPLACE INTO peers VALUES ({', '.join('?' * 13)})", rows)
        self._left: int = self._conn.execute("SELECT count(*) FROM peers").fetchone()[0]
        self._few: dict[PeerId, PeerRow] = {}
        if not self._left:
            self._close()

    def __len__(self) -> int:
        return self._left

    def take(self, pid: PeerId) -> PeerRow | None:
        """The peer's row, once (an in-memory lookup: it never waits for the disk)."""
        if self._conn is None:
            row = self._few.pop(pid, None)
        else:
            found = self._conn.execute(f"DELETE FROM peers WHERE iface = ? AND key = ? RETURNING {COLUMNS}",
                                       pid).fetchone()
            row = None if found is None else PeerRow(*found)
        if row is not None:
            self._left -= 1
            if not self._left:
                self._close()
        return row

    def keep_few(self) -> None:
        """The rows still not taken (peers gone while wgtrack was stopped, or of an interface
        not up yet) become plain objects, and the database goes."""
        if self._conn is not None:
            self._few = {(r[0], r[1]): PeerRow(*r) for r in self._conn.execute(f"SELECT {COLUMNS} FROM peers")}
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if not self._few:
            self._few = {}  # a dict popped empty keeps its table


@dataclass(slots=True)
class Memory:
    """The store's memory of the last run."""

    peers: Remembered = field(default_factory=lambda: Remembered(()))
    stopped_at: float | None = None  # the last heartbeat of the run that ended (None: a new store)
    outbox: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # section -> (id, item), in order
    next_id: int = 1  # the outbox's next id


def load(conn: sqlite3.Connection, now: float) -> Memory:
    """Read the memory and mark a new run starting at ``now``."""
    rollup.catch_up(conn)
    memory = Memory(Remembered(conn.execute(f"SELECT {COLUMNS} FROM peers WHERE status != 'removed'")),
                    stopped_at=rollup.meta(conn, "alive"))
    for item_id, section, item in conn.execute("SELECT id, section, item FROM outbox ORDER BY id"):
        memory.outbox.setdefault(section, []).append((item_id, item))
    memory.next_id = (conn.execute("SELECT max(id) FROM outbox").fetchone()[0] or 0) + 1
    with db.transaction(conn):
        for name in ("run_start", "rolled_until", "alive"):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, repr(now)))
    return memory
