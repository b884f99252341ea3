"""The asyncio core: the daemon's lifecycle. One cycle every ``cycle_time`` seconds
(``cycle``), the lanes between cycles (``lanes``), signals that only set flags, reload as
validate-then-commit (every part a ``Reloadable``), and a bounded shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Protocol

from wgtrack import config as config_mod
from wgtrack import probe, sdnotify
from wgtrack.actions import Actions
from wgtrack.config import Config, ConfigError
from wgtrack.cycle import IO_TIMEOUT_S, Cycle
from wgtrack.errors import StartupError
from wgtrack.lanes import Lanes
from wgtrack.loopwatch import LoopWatch
from wgtrack.outputs.runner import Outputs
from wgtrack.outputs.stdout import StdoutSettings
from wgtrack.publisher import Publisher
from wgtrack.resume import Resumption
from wgtrack.tracker import Tracker
from wgtrack.triggered import TriggeredReads
from wgtrack.workers import Workers
from wgtrack.world import World

if TYPE_CHECKING:
    from wgtrack.history.store import History

__all__ = ["Daemon", "Reloadable", "World"]

log = logging.getLogger(__name__)

# Every output closes in parallel within this one deadline (requests in flight finish, queues
# get a last chance), so that SIGTERM exits well inside 5 s whatever a receiver is doing.
STOP_DEADLINE_S = 3.0
HISTORY_CLOSE_S = 1.0  # then the history store's last writes: within 5 s of SIGTERM in all


class Reloadable(Protocol):
    """A part of the daemon that takes a new config on reload. ``reload`` is called only with a
    config that was validated in full and whose outputs already started: it cannot fail, and
    keeps whatever did not change."""

    def reload(self, old: Config, new: Config) -> None: ...


class _Process:
    """What a reload changes for the whole process: the prober's rate, the log level."""

    def __init__(self, loglevel_override: int | None) -> None:
        self.loglevel_override = loglevel_override

    def reload(self, old: Config, new: Config) -> None:
        probe.set_rate(new.probe_rate)
        if self.loglevel_override is None:
            logging.getLogger().setLevel(new.loglevel)
        history = ("history_enabled", "history_path", "history_retention_s")
        if any(getattr(old, key) != getattr(new, key) for key in history):
            log.warning("[history] changed: it takes effect at the next start; the store stays as it is until then")


class _Tracking:
    """The tracker's side of a reload: new settings, and the wg configs read again."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def reload(self, old: Config, new: Config) -> None:
        self.tracker.set_config(new)
        self.tracker.clear_interface_confs()  # re-read on the next cycle


class _Stopped(Exception):
    """The cycles ended: whatever still runs in the task group is cancelled."""


class Daemon:
    """Runs cycles until told to stop; ``run()`` returns the process exit status."""

    def __init__(self, config: Config, *, once: bool = False, loglevel_override: int | None = None,
                 stdout_override: bool = False, world: World | None = None) -> None:
        self.world = world or World()
        self.stdout_override = stdout_override  # --stdout: applied again on every reload
        self.config = self._overridden(config)
        self.once = once
        self.tracker = Tracker(self.config)
        self.outputs = Outputs(self._count_output_error)
        self.watch = LoopWatch()
        self._io = Workers("io", threads=2)  # config and wg-config reads
        self._stop_signal: str | None = None
        self.history: History | None = None  # opened by run()
        self._reload_requested = False
        self._wake = asyncio.Event()  # stop or reload requested
        self._stopping = asyncio.Event()  # stop requested: abandon a cycle in progress
        self.publisher = Publisher(self.tracker, self.outputs, self.watch, lambda: self.cycle.facts(),
                                   lambda: self._stop_signal is not None)
        self.actions = Actions(self.config, self.tracker, self.world)
        self.lanes = Lanes(self.config, self.tracker, self.actions, self.publisher, self.watch,
                           lambda: self.world.clock.wall_ns() / 1e9, lambda: self.cycle.wg_error is None, once)
        self.cycle = Cycle(self.config, self.tracker, self.world, self.lanes, self.publisher, self.watch, self._io)
        self.triggered = TriggeredReads(self.config, self.tracker, self.world, self.cycle.parser, self.publisher,
                                        lambda: self.cycle.wg_error is None, lambda: self._stop_signal is not None,
                                        once, lambda: self.cycle.namespaces.namespaces)
        self.cycle.after_stepping = self.triggered.cycle
        self.reloadables: tuple[Reloadable, ...] = (
            _Process(loglevel_override), self.triggered, _Tracking(self.tracker), self.actions, self.lanes,
            self.cycle)

    def _overridden(self, config: Config) -> Config:
        return config.with_output("output:stdout", StdoutSettings()) if self.stdout_override else config

    def _count_output_error(self) -> None:
        self.cycle.errors["output"] += 1

    # ---- signals: set flags, nothing else ----

    def request_stop(self, name: str) -> None:
        self._stop_signal = name
        self._stopping.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    # ---- lifecycle ----

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        if not self.once:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        await self._open_history()
        try:
            await self.outputs.start(self.config)
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return 1
        if self.history is not None:
            self.history.outbox.forget_untaken()
        probe.set_rate(self.config.probe_rate)
        sdnotify.notify("READY=1")
        log.info("wgtrack started: cycle %g s, outputs: %s", self.config.cycle_time_s, self.outputs.names)
        self.tracker.events.tracker_event("tracker_started", self.world.clock.wall_ns() / 1e9, "wgtrack started")
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._run_in(tasks)
                # A task group waits for its tasks when its body ends, and cancels them when it
                # raises: on a hub saturated with probes, work waiting for its probe's slot
                # (minutes, at the slow rate) kept SIGTERM from ending the daemon.
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            sdnotify.notify("STOPPING=1")
            if self._stop_signal:
                self._publish_farewell()
            # In parallel: the managed nft table goes while the outputs close.
            await asyncio.gather(self.outputs.close(STOP_DEADLINE_S), self.triggered.close())
            if self.history is not None:  # after the outputs: what they kept as they closed goes in too
                await self.history.close(HISTORY_CLOSE_S)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        if self._stop_signal:
            log.info("received %s, stopped cleanly after %d cycles", self._stop_signal, self.cycle.number)
        return 0

    async def _run_in(self, tasks: asyncio.TaskGroup) -> None:
        """The cycles and, beside them, the lanes and the watchdog; all stopped on the way out."""
        self.publisher.tasks = self.actions.tasks = self.lanes.tasks = self.triggered.tasks = tasks
        beside = [tasks.create_task(self.watch.watch())]
        if not self.once:
            beside += [tasks.create_task(self.lanes.fast_lane()), tasks.create_task(self.lanes.slow_lane())]
        self.triggered.start()
        try:
            await self._loop()
        finally:
            self.triggered.stop()
            for task in beside:
                task.cancel()
            self.publisher.cancel()
            self.actions.cancel()
            self.lanes.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            tick = asyncio.ensure_future(self.cycle.run())
            waker = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({tick, waker}, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            if not tick.done():  # stop requested mid-cycle: abandon it
                tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
            if self._stop_signal or self.once:
                return
            # Deadlines come from the loop clock, so the period does not drift.
            deadline = started + self.config.cycle_time_s
            while not self._stop_signal:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), remaining)
                self._wake.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    await self._reload()
                    deadline = started + self.config.cycle_time_s
            if self._stop_signal:
                return

    async def _reload(self) -> None:
        """Validate the new config in full and start its outputs; only then does every part
        take it. A broken file (or an output that cannot start) changes nothing."""
        sdnotify.reloading()
        try:
            new = self._overridden(await self._io.run(config_mod.load, self.config.path, timeout_s=IO_TIMEOUT_S))
            changes = await self.outputs.reconcile(new)
        except (ConfigError, StartupError, TimeoutError) as exc:
            reason = "reading the config timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.error("reload refused, still running on the previous config: %s", reason.replace("\n", "; "))
            sdnotify.notify("READY=1")
            return
        old, self.config = self.config, new
        for part in self.reloadables:
            part.reload(old, new)
        log.info("reloaded %s: cycle %g s, outputs: %s (%s)", new.path, new.cycle_time_s, self.outputs.names,
                 ", ".join(changes) or "outputs unchanged")
        sdnotify.notify("READY=1")

    async def _open_history(self) -> None:
        """Open the store (or run without it) and hand its parts to those who note, resume
        and keep: the tracker, the outputs, the publisher."""
        if not self.config.history_enabled:
            return  # sqlite is not even loaded (1.3 MB of RSS)
        from wgtrack.history.store import History

        self.history = await History.open(self.config, lambda: self.world.clock.wall_ns() / 1e9)
        if self.history is None:
            return
        # A first change within three cycles (a minute at least) of the start was made while stopped.
        self.tracker.resumption = Resumption(self.history.memory.peers, lambda: self.tracker.views.wall_offset,
                                             max(60.0, 3 * self.config.cycle_time_s))
        self.tracker.events.journal = self.history.journal
        self.outputs.outbox = self.history.outbox
        self.publisher.history = self.history

    def _publish_farewell(self) -> None:
        """One last snapshot carrying ``tracker_stopping``, so event outputs hear of the stop."""
        wall_ns = self.world.clock.wall_ns()
        self.tracker.events.tracker_event("tracker_stopping", wall_ns / 1e9, f"wgtrack stopping ({self._stop_signal})")
        self.publisher.offer(self.tracker.snapshot(asyncio.get_running_loop().time(),
                                                   self.cycle.facts(wall_ns, stopped=True)), stopping=True)
