"""Snapshots to the outputs: one per cycle, and between cycles as soon as a change is decided,
coalesced so that a flapping hub cannot turn into a write storm."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wgtrack.parts import finish_with_turns

if TYPE_CHECKING:
    from wgtrack.history.store import History
    from wgtrack.loopwatch import LoopWatch
    from wgtrack.outputs.runner import Outputs
    from wgtrack.snapshot import CycleFacts, Snapshot
    from wgtrack.tracker import Tracker

# At most one publish between cycles per this many seconds (the changes meanwhile coalesce).
MIN_PUBLISH_GAP_S = 1.0


class Publisher:
    """Builds the tracker's snapshot in parts and offers it to every output."""

    def __init__(self, tracker: Tracker, outputs: Outputs, watch: LoopWatch, facts: Callable[[], CycleFacts],
                 stopping: Callable[[], bool]) -> None:
        self.tracker, self.outputs, self.watch = tracker, outputs, watch
        self._facts, self._stopping = facts, stopping
        self.tasks: asyncio.TaskGroup | None = None  # set while the daemon runs
        self.history: History | None = None  # the history store, when it is on: fed every offer
        self._published_at = -1e18  # loop time of the last offer
        self._later: asyncio.TimerHandle | None = None

    async def snapshot(self, facts: CycleFacts) -> Snapshot:
        """The tracker's snapshot, built in parts with a turn for the loop between them."""
        return await finish_with_turns(self.tracker.snapshot_in_parts(asyncio.get_running_loop().time(), facts))

    def offer(self, snap: Snapshot, stopping: bool = False) -> None:
        """Every output gets it (each keeps only the newest), and the history store what it
        noted meanwhile; the cycle never waits."""
        if self.history is not None:
            self.history.cycle(snap, stopping)
            snap = dataclasses.replace(snap, availability=self.history.recorder.figures,
                                       history_path=str(self.history.writer.path))
        self.outputs.offer(snap)
        self._published_at = asyncio.get_running_loop().time()

    async def after(self, work: Awaitable[None]) -> None:
        """Work for a peer between cycles; a change it decides is published at once."""
        before = self.tracker.changes
        await work
        if self.tracker.changes != before:
            self.soon()

    def soon(self) -> None:
        """A fresh snapshot to the outputs now, or as soon as MIN_PUBLISH_GAP_S allows."""
        loop = asyncio.get_running_loop()
        wait = self._published_at + MIN_PUBLISH_GAP_S - loop.time()
        if wait <= 0:
            self._between_cycles()
        elif self._later is None:
            self._later = loop.call_later(wait, self._between_cycles)

    def cancel(self) -> None:
        if self._later is not None:
            self._later.cancel()

    def _between_cycles(self) -> None:
        self._later = None
        if self._stopping() or self.tasks is None:
            return
        # Marked as published now, so that more changes meanwhile coalesce into the next one.
        self._published_at = asyncio.get_running_loop().time()
        self.tasks.create_task(self._now())

    async def _now(self) -> None:
        with self.watch.working():
            snap = await self.snapshot(self._facts())
            if not self._stopping():
                self.offer(snap)
