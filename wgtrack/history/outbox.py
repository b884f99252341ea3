"""Events not yet delivered, kept in the store so that a restart (or a crash) delivers them:
at least once across restarts. An output puts an item when it queues it and marks it done when
the receiver took it (or when it dropped it, past its bound); both ride the cycle's batch, so a
kill loses at most the last cycle's. Items of a section no output takes after a start are
dropped with a log line."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wgtrack.history.memory import Memory
    from wgtrack.history.writer import Batch

log = logging.getLogger("wgtrack.history")

PUT = "INSERT OR REPLACE INTO outbox (id, section, item) VALUES (?, ?, ?)"
DONE = "DELETE FROM outbox WHERE id = ?"


class Outbox:
    """Ids, puts and deliveries; what the last run left, by section, for its outputs to take."""

    def __init__(self, memory: Memory) -> None:
        self._next = memory.next_id
        self._left = memory.outbox
        self._puts: dict[int, tuple[int, str, str]] = {}
        self._dones: list[tuple[int]] = []

    def put(self, section: str, item: str) -> int:
        item_id, self._next = self._next, self._next + 1
        self._puts[item_id] = (item_id, section, item)
        return item_id

    def done(self, item_id: int) -> None:
        if self._puts.pop(item_id, None) is None:  # put and done within one cycle: neither is written
            self._dones.append((item_id,))

    def take(self, section: str, limit: int) -> list[tuple[int, str]]:
        """What the last run left for ``section`` (the newest ``limit``; the others are done)."""
        left = self._left.pop(section, [])
        for item_id, _ in left[:-limit] if len(left) > limit else []:
            self.done(item_id)
        return left[-limit:] if limit else []

    def forget_untaken(self) -> None:
        """Items of sections no output took (an output removed from the config) are dropped."""
        for section, left in self._left.items():
            log.warning("history store: %d undelivered item(s) of [%s] dropped: no such output now", len(left),
                        section)
            for item_id, _ in left:
                self.done(item_id)
        self._left = {}

    def drain_into(self, batch: Batch) -> None:
        batch.add(PUT, list(self._puts.values()))
        batch.add(DONE, self._dones)
        self._puts, self._dones = {}, []
