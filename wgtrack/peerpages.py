"""Serving a peer's page: the peer found in the snapshot by interface and name (or key), its
past read from the history store on a thread of its own under a deadline (a slow disk costs
the page its past, never the loop or the metrics)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from wgtrack.history import db, reading
from wgtrack.peerpage import render_peer
from wgtrack.statuspage import parse_peer_path
from wgtrack.workers import Busy, Workers

if TYPE_CHECKING:
    from wgtrack.snapshot import PeerView, Snapshot

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 2.0  # a peer's past, read from the store


def _read(path: str, peer: tuple[str, str], now: float) -> reading.PeerHistory:
    conn = db.connect(Path(path), readonly=True)
    try:
        return reading.peer_history(conn, peer, now)
    finally:
        conn.close()


class PeerPages:
    """Finds peers by their page's path; reads their past."""

    def __init__(self) -> None:
        self._reads = Workers("peer-pages", threads=2)
        self._index: tuple[Snapshot | None, dict[tuple[str, str], PeerView]] = (None, {})

    def _find(self, snapshot: Snapshot, iface: str, name: str) -> PeerView | None:
        if self._index[0] is not snapshot:  # once per snapshot: by name and by key
            index: dict[tuple[str, str], PeerView] = {}
            for i in snapshot.interfaces:
                for p in i.peers:
                    index[(p.interface, p.public_key)] = p
                    if p.friendly_name:
                        index.setdefault((p.interface, p.friendly_name), p)
            self._index = (snapshot, index)
        return self._index[1].get((iface, name))

    async def page(self, snapshot: Snapshot | None, target: str) -> Iterator[str] | None:
        """The page of the peer at ``target``, or None (no such peer)."""
        where = parse_peer_path(target.partition("?")[0])
        if snapshot is None or where is None:
            return None
        view = self._find(snapshot, *where)
        if view is None:
            return None
        now = snapshot.time_ns / 1e9  # the page is of that moment, as the list is
        avail = (snapshot.availability or {}).get((view.interface, view.public_key))
        if snapshot.history_path is None:
            return render_peer(view, avail, None, now, "No history store: its past is not kept ([history]).")
        try:
            past = await self._reads.run(_read, snapshot.history_path, (view.interface, view.public_key), now,
                                         timeout_s=READ_TIMEOUT_S, refuse_when_busy=True)
        except (TimeoutError, Busy, sqlite3.Error, OSError) as exc:
            reason = "too slow" if isinstance(exc, TimeoutError | Busy) else str(exc)
            return render_peer(view, avail, None, now, f"The history store could not be read: {reason}.")
        return render_peer(view, avail, past, now)
