"""Runs the outputs: each in a task of its own, fed by offers, reconciled on reload.

The cycle offers every snapshot and never waits: a runner keeps only the newest snapshot
(state), carrying over the events of any it skipped (order kept, bounded), and publishes it
under a deadline. One output's stall can delay neither the cycle nor another output. On
reload, outputs are matched by section: an unchanged section keeps running untouched (its
queue, buffer, firing alerts and listening socket); a changed one is stopped first (a request
in flight finishes; a listener is closed just before the rebind) and its successor takes over
what was queued; a failure part-way rolls everything back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from wgtrack.errors import StartupError
from wgtrack.outputs import Output, registry
from wgtrack.redact import redact_text
from wgtrack.retry import FailureRun

if TYPE_CHECKING:
    from wgtrack.config import Config
    from wgtrack.history.outbox import Outbox
    from wgtrack.snapshot import Snapshot

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 30.0  # one publish; file writes and renders of very large hubs included
MAX_CARRIED_EVENTS = 10_000  # events of skipped snapshots kept for a stalled output


class Runner:
    """One output and the task that feeds it."""

    def __init__(self, section: str, settings: object, output: Output, on_error: Callable[[], None]) -> None:
        self.section, self.settings, self.output = section, settings, output
        self._on_error = on_error
        self._pending: Snapshot | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = FailureRun(log, output.name)
        self.dropped_events = 0
        self.drops = FailureRun(log, f"{output.name}: stalled")  # one line per stall, not per hand-over
        self._finish = False  # stop once nothing is pending
        self._halt = False  # stop after the publish under way, leaving the rest for a successor

    def offer(self, snap: Snapshot) -> None:
        """Keep ``snap`` as the next to publish (only the newest is kept, the events of those
        skipped are carried over); never waits."""
        if self._pending is not None and self._pending.events:
            events = self._pending.events + snap.events
            if len(events) > MAX_CARRIED_EVENTS:
                self.dropped_events += len(events) - MAX_CARRIED_EVENTS
                self.drops.failed(f"{self.dropped_events} events dropped so far", "dropping the oldest carried events")
                events = events[-MAX_CARRIED_EVENTS:]
            snap = dataclasses.replace(snap, events=events)
        self._pending = snap
        self._wake.set()

    async def start(self) -> None:
        await self.output.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"runner {self.section}")

    async def _run(self) -> None:
        while True:
            if self._pending is None or self._halt:
                if self._finish or self._halt:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            snap, self._pending = self._pending, None
            await self._publish(snap)

    async def _publish(self, snap: Snapshot) -> None:
        try:
            await asyncio.wait_for(self.output.publish(snap), PUBLISH_TIMEOUT_S)
        except Exception as exc:  # any output failure is logged, never fatal
            self._on_error()
            self.failures.failed(redact_text(f"{type(exc).__name__}: {exc}"), "publish failed")
        else:
            self.failures.recovered("publishing again")
            self.drops.recovered("delivering again")

    async def _stop_task(self, *, publish_pending: bool) -> None:
        """Let a publish under way finish (the caller bounds the wait); then stop, after
        publishing what is pending or leaving it for a successor."""
        if self._task is None:
            return
        if publish_pending:
            self._finish = True
        else:
            self._halt = True
        self._wake.set()
        try:
            await self._task
        finally:
            if not self._task.done():
                self._task.cancel()
            self._task = None

    async def close(self) -> None:
        """Publish what is pending (the farewell), then close the output. Callers bound it."""
        if self._task is None and self._pending is not None:  # never started its task
            snap, self._pending = self._pending, None
            await self._publish(snap)
        await self._stop_task(publish_pending=True)
        await self.output.close()

    async def stop_for_successor(self) -> None:
        """Stop for a successor: nothing is flushed or lost; the successor takes the queue."""
        await self._stop_task(publish_pending=False)
        await self.output.stop_for_successor()


class Outputs:
    """Every running output, by section."""

    def __init__(self, on_error: Callable[[], None]) -> None:
        self.runners: dict[str, Runner] = {}
        self._on_error = on_error
        self.outbox: Outbox | None = None  # the history store's, when it is on: set before start

    @property
    def names(self) -> str:
        return ", ".join(r.output.name for r in self.runners.values()) or "none"

    def _runner(self, section: str, settings: object) -> Runner:
        output = registry.make(section, settings)
        if self.outbox is not None:
            output.keep_in(self.outbox, section)
        return Runner(section, settings, output, self._on_error)

    async def start(self, config: Config) -> None:
        """Start every output of ``config``; on any failure, close those started and raise."""
        started: list[Runner] = []
        try:
            for section, settings in registry.plan(config).items():
                runner = self._runner(section, settings)
                await runner.start()
                started.append(runner)
        except BaseException:
            await _close_all(started, 2.0)
            raise
        self.runners = {r.section: r for r in started}

    def offer(self, snap: Snapshot) -> None:
        for runner in self.runners.values():
            runner.offer(snap)

    async def reconcile(self, config: Config) -> list[str]:
        """Apply ``config``'s outputs; return what changed. Raises ``StartupError`` after rolling
        back when a new or changed output cannot start."""
        plan = registry.plan(config)
        added = [s for s in plan if s not in self.runners]
        changed = [s for s in plan if s in self.runners and self.runners[s].settings != plan[s]]
        removed = [s for s in self.runners if s not in plan]
        started: list[Runner] = []
        replaced: list[tuple[Runner, Runner]] = []  # (old, new)
        try:
            for section in added:
                runner = self._runner(section, plan[section])
                await runner.start()
                started.append(runner)
            for section in changed:
                old = self.runners[section]
                new = self._runner(section, plan[section])
                await old.stop_for_successor()  # the old listener closes just before the new one binds
                replaced.append((old, new))
                _take_over(new, old)
                await new.start()
        except BaseException:
            await self._roll_back(started, replaced)
            raise
        for old, new in replaced:
            self.runners[old.section] = new
        self.runners.update({r.section: r for r in started})
        await _close_all([self.runners.pop(s) for s in removed], 3.0)
        return [f"+{s}" for s in added] + [f"~{s}" for s in changed] + [f"-{s}" for s in removed]

    async def _roll_back(self, started: list[Runner], replaced: list[tuple[Runner, Runner]]) -> None:
        await _close_all(started, 2.0)
        for old, new in replaced:
            with contextlib.suppress(Exception):
                await new.stop_for_successor()
            revived = self._runner(old.section, old.settings)
            _take_over(revived, new)  # the queue went to the new one: bring it back
            try:
                await revived.start()
            except Exception as exc:  # the old settings worked a moment ago; say so if not now
                log.error("%s: could not be restored after a failed reload: %s", old.output.name,
                          redact_text(str(exc)))
                self.runners.pop(old.section, None)
                continue
            self.runners[old.section] = revived

    async def close(self, deadline_s: float) -> None:
        """Close every output in parallel under one deadline."""
        runners, self.runners = list(self.runners.values()), {}
        await _close_all(runners, deadline_s)


def _take_over(new: Runner, old: Runner) -> None:
    new.output.take_over(old.output)
    if old._pending is not None:
        new.offer(old._pending)


async def _close_all(runners: list[Runner], deadline_s: float) -> None:
    async def one(runner: Runner) -> None:
        try:
            await runner.close()
        except Exception as exc:  # a broken output must not stop the others closing
            log.warning("%s: close failed: %s", runner.output.name, redact_text(str(exc)))

    tasks = [asyncio.ensure_future(one(r)) for r in runners]
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=deadline_s)
    for task in late:
        task.cancel()
    for task, runner in zip(tasks, runners, strict=True):
        if task in late:
            log.warning("%s: not closed within %g s, abandoned", runner.output.name, deadline_s)
    if late:
        await asyncio.wait(late, timeout=0.5)


__all__ = ["Outputs", "Runner", "StartupError"]
