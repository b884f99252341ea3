"""What a start reads back from the store: the run that ended rolled up, each peer's last state
and counters, the events not yet delivered. Runs on the writer's thread, before the first cycle."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from wgtrack.history import db, rollup
from wgtrack.history.journal import PeerRow

PeerId = tuple[str, str]


@dataclass(slots=True)
class Memory:
    """The store's memory of the last run."""

    peers: dict[PeerId, PeerRow] = field(default_factory=dict)
    stopped_at: float | None = None  # the last heartbeat of the run that ended (None: a new store)
    outbox: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # section -> (id, item), in order
    next_id: int = 1  # the outbox's next id


def load(conn: sqlite3.Connection, now: float) -> Memory:
    """Read the memory and mark a new run starting at ``now``."""
    rollup.catch_up(conn)
    memory = Memory(stopped_at=rollup.meta(conn, "alive"))
    for row in conn.execute("SELECT iface, key, name, status, since, latest_handshake, endpoint, rx_base, tx_base, "
                            "rx, tx, degraded, target FROM peers WHERE status != 'removed'"):
        memory.peers[(row[0], row[1])] = PeerRow(*row)
    for item_id, section, item in conn.execute("SELECT id, section, item FROM outbox ORDER BY id"):
        memory.outbox.setdefault(section, []).append((item_id, item))
    memory.next_id = (conn.execute("SELECT max(id) FROM outbox").fetchone()[0] or 0) + 1
    with db.transaction(conn):
        for name in ("run_start", "rolled_until", "alive"):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, repr(now)))
    return memory
