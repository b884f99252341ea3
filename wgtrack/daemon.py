"""The asyncio core: one cycle every ``cycle_time`` seconds, signals, reload and shutdown.

Each cycle observes (``wg`` under a timeout), steps every peer's machine, runs the
probes they ask for, then hands one immutable snapshot to the outputs. Signal handlers
only set flags; the loop acts on them between cycles.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from wgtrack import checks, heap, link, probe, sdnotify
from wgtrack import config as config_mod
from wgtrack.config import Config, ConfigError, StdoutSettings
from wgtrack.dump import DumpReader
from wgtrack.errors import StartupError
from wgtrack.model import Dump
from wgtrack.outputs.runner import Outputs
from wgtrack.resolve import Resolver
from wgtrack.snapshot import CycleFacts, Snapshot
from wgtrack.tracker import PeerId, Tracker
from wgtrack.trigger import HandshakeTrigger
from wgtrack.wgcmd import WgResult, run_wg, show_all_dump
from wgtrack.wgconf import load_interface_conf
from wgtrack.workers import Workers

log = logging.getLogger(__name__)

# Every output closes in parallel within this one deadline (requests in flight finish, queues
# get a last chance), so that SIGTERM exits well inside 5 s whatever a receiver is doing.
STOP_DEADLINE_S = 3.0
IO_TIMEOUT_S = 10.0  # reading a config file or a wg config (a hung NFS mount, say)
SETTLE_AFTER_ADDED = 1_000  # peers added since the heap was last settled that call for it again
PARSE_TIMEOUT_S = 60.0  # a dump is at most wgcmd.MAX_STDOUT: a million peers parse well within it
MAX_ACTION_CHAIN = 8  # probe -> resolve -> set -> probe ... never loops unbounded
# A cycle waits this long (at most) for the re-resolutions it started, so that a heal with a
# healthy DNS server is reported in the same cycle; a dead one just finishes in the background.
BACKGROUND_WAIT_MAX_S = 2.0
BACKGROUND_WAIT_SHARE = 0.3  # of cycle_time
LAG_PERIOD_S = 0.1  # how often the loop-lag watchdog wakes
FAST_LANE_TICK_S = 0.25  # how often down peers are looked at (each has its down_probe_interval)
# A state change decided between cycles is published at once, but a flapping hub must not turn
# that into a write storm: at most one such publish per this many seconds (the rest coalesce).
MIN_PUBLISH_GAP_S = 1.0


class ResolverLike(Protocol):
    async def resolve(self, hostname: str) -> link.ResolveResult: ...


@dataclass(frozen=True)
class World:
    """What the daemon talks to. Tests pass fakes, so a whole cycle runs in-process."""

    read_wg: Callable[[str, float], Awaitable[WgResult]] = show_all_dump  # (wg command, timeout)
    run_wg: Callable[[str, list[str], float], Awaitable[WgResult]] = run_wg
    # (target, count, timeout, urgent: up or in its first minute down, so it goes first when probes wait)
    probe: Callable[[str, int, float, bool], Awaitable[link.ProbeResult]] = probe.ping
    check: Callable[[checks.Check, float], Awaitable[checks.CheckResult]] = checks.run  # (check, timeout)
    resolver: Callable[[Path, float], ResolverLike] = Resolver  # (hosts file, DNS timeout)
    poke: Callable[[str], None] = field(default=lambda target: _poke(target))
    wall_ns: Callable[[], int] = time.time_ns


class Daemon:
    """Runs cycles until told to stop; ``run()`` returns the process exit status."""

    def __init__(self, config: Config, *, once: bool = False, loglevel_override: int | None = None,
                 stdout_override: bool = False, world: World | None = None) -> None:
        self.world = world or World()
        self.stdout_override = stdout_override  # --stdout: applied again on every reload
        self.config = self._overridden(config)
        self.once = once
        self.loglevel_override = loglevel_override
        self.tracker = Tracker(self.config)
        self.resolver = self.world.resolver(config.hosts_file, config.dns_timeout_s)
        self.outputs = Outputs(self._count_output_error)
        self._io = Workers("io", threads=2)  # config and wg-config reads
        # Parsing 50,000 dump lines takes longer than the loop may be held: one thread of its own
        # (one, so that each DumpReader is only ever used by one thread at a time).
        self._parser = Workers("parse", threads=1)
        self._reader = DumpReader()  # used on the parse thread only
        self._interface_readers: dict[str, DumpReader] = {}  # the trigger's reads, one reader per interface
        self._background: dict[PeerId, asyncio.Task[None]] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._max_lag_s = 0.0
        self._last_success_ns = 0
        self._errors: dict[str, int] = {"wg": 0, "parse": 0, "output": 0}
        self._wg_error: str | None = None
        self._dump_problem_kinds: set[str] = set()  # kinds logged in the current run of bad dumps
        self._cycle = 0
        self._started_ns = self.world.wall_ns()
        self._stop_signal: str | None = None
        self._reload_requested = False
        self._wake = asyncio.Event()  # stop or reload requested
        self._stopping = asyncio.Event()  # stop requested: abandon a cycle in progress
        self._fast: dict[PeerId, asyncio.Task[None]] = {}  # fast-lane probes in flight
        self._fast_due = math.inf  # when the fast lane plans to wake
        self._fast_wake = asyncio.Event()  # something is due sooner than that
        self.tracker.on_due = self._due_at
        self._queued: dict[PeerId, list[link.Effect]] = {}  # the slow queue's entries (see _enqueue)
        self._queue_order: collections.deque[PeerId] = collections.deque()
        self._slow_wake = asyncio.Event()
        self._slow_running = 0
        self._busy = 0  # stretches of work in progress (see _working)
        self._busy_event = asyncio.Event()
        self._published_at = -1e18  # loop time of the last hand-over
        self._publish_later: asyncio.TimerHandle | None = None
        self._last_duration_s = 0.0
        self._trigger: HandshakeTrigger | None = None
        self._heap = heap.Settler(SETTLE_AFTER_ADDED)

    def _overridden(self, config: Config) -> Config:
        return config.with_output("output:stdout", StdoutSettings()) if self.stdout_override else config

    def _count_output_error(self) -> None:
        self._errors["output"] += 1

    # ---- signals: set flags, nothing else ----

    def _request_stop(self, name: str) -> None:
        self._stop_signal = name
        self._stopping.set()
        self._wake.set()

    def _request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    # ---- lifecycle ----

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig.name)
        if not self.once:
            loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        try:
            await self.outputs.start(self.config)
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return 1
        probe.set_rate(self.config.probe_rate)
        sdnotify.notify("READY=1")
        log.info("wgtrack started: cycle %g s, outputs: %s", self.config.cycle_time_s, self.outputs.names)
        self.tracker.tracker_event("tracker_started", self.world.wall_ns() / 1e9, "wgtrack started")
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                watchdog = tasks.create_task(self._watch_lag())
                fast_lane = None if self.once else tasks.create_task(self._fast_lane())
                slow_lane = None if self.once else tasks.create_task(self._slow_lane())
                self._set_trigger()
                try:
                    await self._loop(loop)
                finally:
                    self._stop_trigger()
                    watchdog.cancel()
                    for lane in (fast_lane, slow_lane):
                        if lane is not None:
                            lane.cancel()
                    if self._publish_later is not None:
                        self._publish_later.cancel()
                    for task in [*self._background.values(), *self._fast.values()]:
                        task.cancel()
        finally:
            sdnotify.notify("STOPPING=1")
            if self._stop_signal:
                self._publish_farewell()
            await self.outputs.close(STOP_DEADLINE_S)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        if self._stop_signal:
            log.info("received %s, stopped cleanly after %d cycles", self._stop_signal, self._cycle)
        return 0

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            started = loop.time()
            tick = asyncio.ensure_future(self._tick())
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
        probe.set_rate(new.probe_rate)
        if (old.nflog_group, old.nflog_min_interval_s) != (new.nflog_group, new.nflog_min_interval_s):
            self._stop_trigger()
            self._set_trigger()
        self.tracker.set_config(new)
        self.resolver = self.world.resolver(new.hosts_file, new.dns_timeout_s)
        self.tracker.clear_interface_confs()  # wg configs are re-read on the next cycle
        if self.loglevel_override is None:
            logging.getLogger().setLevel(new.loglevel)
        log.info("reloaded %s: cycle %g s, outputs: %s (%s)", new.path, new.cycle_time_s, self.outputs.names,
                 ", ".join(changes) or "outputs unchanged")
        sdnotify.notify("READY=1")

    def _publish_farewell(self) -> None:
        """One last snapshot carrying ``tracker_stopping``, so event outputs hear of the stop."""
        loop = asyncio.get_running_loop()
        wall_ns = self.world.wall_ns()
        self.tracker.tracker_event("tracker_stopping", wall_ns / 1e9, f"wgtrack stopping ({self._stop_signal})")
        self.outputs.hand_over(self.tracker.snapshot(loop.time(), self._facts(wall_ns, 0.0, stopped=True)))

    def _facts(self, wall_ns: int, duration_s: float, stopped: bool = False) -> CycleFacts:
        return CycleFacts(time_ns=wall_ns, cycle=self._cycle, wg_error=self._wg_error,
                          cycle_duration_s=round(duration_s, 6), started_ns=self._started_ns,
                          loop_lag_ms=round(self._max_lag_s * 1000, 3), last_success_ns=self._last_success_ns,
                          errors=tuple(sorted(self._errors.items())), stopped=stopped)

    # ---- one cycle ----

    async def _tick(self) -> None:
        with self._working():
            await self._cycle_work()

    async def _cycle_work(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._cycle += 1
        wall_ns = self.world.wall_ns()
        wall = wall_ns / 1e9
        result = await self.world.read_wg(self.config.wg_command, self.config.wg_timeout_s)
        dump = None
        if result.error is None:
            try:
                dump = await self._parser.run(self._reader.read, result.stdout, timeout_s=PARSE_TIMEOUT_S)
            except TimeoutError:
                self._reader = DumpReader()  # the late parse goes on with the old one: read whole next time
                result = WgResult("", f"parsing the dump took more than {PARSE_TIMEOUT_S:g} s")
        if result.error is not None or dump is None:
            if self._wg_error is None:
                log.error("cannot read WireGuard state, outputs carry no peer data until it works: %s",
                          result.error)
            self._wg_error = result.error
            self._errors["wg"] += 1
            self.tracker.forget()
        else:
            if self._wg_error is not None:
                log.info("WireGuard state readable again")
            self._wg_error = None
            self._last_success_ns = wall_ns
            self._log_dump_problems(dump.problems, dump.bad_lines)
            await self._read_new_interface_confs([i.name for i in dump.interfaces])
            todo: list[tuple[PeerId, link.Effect]] = []
            for part in self.tracker.observe_in_parts(dump, loop.time(), wall):
                todo.extend(part)
                self._heap.added(self.tracker.added)
                await asyncio.sleep(0)  # a turn for the loop between parts: a big hub never holds it
            await self._carry_out_all(todo)
        if self._trigger is not None:
            self._trigger.cycle(self.tracker.handshakes)
        self._last_duration_s = loop.time() - started
        snap = await self._snapshot(self._facts(wall_ns, self._last_duration_s))
        self._max_lag_s = 0.0
        self.outputs.hand_over(snap)
        self._published_at = loop.time()
        self._heap.cycle_done(self.tracker.added)
        log.debug("cycle %d done in %.3f s", self._cycle, loop.time() - started)

    async def _snapshot(self, facts: CycleFacts) -> Snapshot:
        """The tracker's snapshot, built in parts with a turn for the loop between them."""
        for made in self.tracker.snapshot_in_parts(asyncio.get_running_loop().time(), facts):
            if made is not None:
                return made
            await asyncio.sleep(0)
        raise AssertionError("snapshot_in_parts ends with the snapshot")

    def _log_dump_problems(self, problems: tuple[tuple[str, int, int], ...], bad_lines: int) -> None:
        """One line per kind of problem per run of bad dumps, with its count; never the line."""
        self._errors["parse"] += bad_lines
        if not problems and self._dump_problem_kinds:
            log.info("wg show all dump: every line parses again")
            self._dump_problem_kinds.clear()
        for kind, count, first in problems:
            if kind not in self._dump_problem_kinds:
                self._dump_problem_kinds.add(kind)
                log.warning("wg show all dump: %d line(s) skipped, first line %d: %s (logged once per kind "
                            "until the dump is clean)", count, first, kind)

    async def _read_new_interface_confs(self, present: list[str]) -> None:
        known = self.tracker.known_interfaces()
        new = [name for name in present if name not in known]
        if not new:
            return
        for name in new:
            try:
                conf = await self._io.run(load_interface_conf, Path(self.config.wg_config_dir), name,
                                          timeout_s=IO_TIMEOUT_S)
            except TimeoutError:
                log.warning("reading the wg config of %s timed out; going on without it", name)
                conf = {}
            self.tracker.set_interface_conf(name, conf)

    # ---- carrying out the machines' actions ----

    async def _carry_out_all(self, todo: list[tuple[PeerId, link.Effect]]) -> None:
        """Run each peer's actions concurrently. Probes of links that are up finish within the
        cycle (a break is in this cycle's output); those of links that are not up (new, idle,
        down) run on, as the fast lane's do, and what they find is published at once: a hub's
        thousands of departed peers never hold up a cycle. Re-resolutions run in the
        background, and the cycle waits a little for those it started so that a heal with a
        healthy DNS server is reported in the same cycle."""
        per_peer: dict[PeerId, list[link.Effect]] = {}
        for pid, action in todo:
            per_peer.setdefault(pid, []).append(action)
        spawned: list[asyncio.Task[None]] = []
        awaited = []
        now = asyncio.get_running_loop().time()
        for pid, actions in per_peer.items():
            if self.once or self._tasks is None or self.tracker.is_up(pid):
                awaited.append(self._peer_actions(pid, actions, spawned))
                continue
            probes: list[link.Effect] = [a for a in actions if isinstance(a, link.Probe)]
            busy = pid in self._fast or pid in self._queued  # a probe in flight or queued answers for this one
            if probes and (busy or not self.tracker.is_urgent(pid, now)):
                if not busy:
                    self._enqueue(pid, probes)
                # Anything but the probe (a re-resolution the machine now waits for) runs now:
                # were it dropped or queued with the probe, the peer would be left waiting.
                rest: list[link.Effect] = [a for a in actions if not isinstance(a, link.Probe)]
                if rest:
                    self._tasks.create_task(self._run_on(self._peer_actions(pid, rest, spawned)))
            elif not busy:
                task = self._tasks.create_task(self._run_on(self._peer_actions(pid, actions, spawned)))
                self._fast[pid] = task
                task.add_done_callback(functools.partial(self._forget_fast, pid))
            else:
                self._tasks.create_task(self._run_on(self._peer_actions(pid, actions, spawned)))
        await asyncio.gather(*awaited)
        if spawned:
            budget = min(BACKGROUND_WAIT_MAX_S, BACKGROUND_WAIT_SHARE * self.config.cycle_time_s)
            await asyncio.wait(spawned, timeout=budget)

    async def _peer_actions(self, pid: PeerId, actions: list[link.Effect], spawned: list[asyncio.Task[None]]) -> None:
        for action in actions:
            await self._dispatch(pid, action, 0, spawned)

    async def _dispatch(self, pid: PeerId, action: link.Effect, depth: int,
                        spawned: list[asyncio.Task[None]]) -> None:
        """The one dispatch, at every depth of a chain: a Resolve always goes to the
        background (a dead DNS server delays nobody); anything else is awaited here."""
        if depth >= MAX_ACTION_CHAIN:
            log.warning("%s: action chain cut at %d steps", self.tracker.name_of(pid), depth)
            return
        if isinstance(action, link.Resolve):
            running = self._background.get(pid)
            if running is None or running.done():
                assert self._tasks is not None
                task = self._tasks.create_task(self._carry_out(pid, action, depth, spawned))
                self._background[pid] = task
                task.add_done_callback(lambda done: self._forget_background(pid, done))
                spawned.append(task)
            return
        await self._carry_out(pid, action, depth, spawned)

    def _forget_background(self, pid: PeerId, done: asyncio.Task[None]) -> None:
        if self._background.get(pid) is done:
            del self._background[pid]

    async def _carry_out(self, pid: PeerId, action: link.Effect, depth: int,
                         spawned: list[asyncio.Task[None]]) -> None:
        try:
            observation = await self._perform(pid, action)
        except Exception:  # one peer's trouble must never stop the others
            log.exception("%s: %s failed", self.tracker.name_of(pid), type(action).__name__)
            return
        if observation is None:
            return
        for follow in self.tracker.observe(pid, observation, asyncio.get_running_loop().time()):
            await self._dispatch(pid, follow, depth + 1, spawned)

    async def _perform(self, pid: PeerId, action: link.Effect) -> link.Observation | None:
        settings = self.tracker.settings(pid)
        world = self.world
        if isinstance(action, link.Probe):
            if settings.checks:
                return await self._probe_with_checks(pid, action.target, settings)
            return await world.probe(action.target, settings.ping_count, settings.ping_timeout_s,
                                     self.tracker.is_urgent(pid, asyncio.get_running_loop().time()))
        if isinstance(action, link.Resolve):
            log.info("%s: re-resolving %s", self.tracker.name_of(pid), action.hostname)
            return await self.resolver.resolve(action.hostname)
        if isinstance(action, link.ProbeUnderlay):
            # Outside the tunnel: the endpoint's own address, through the normal routes.
            reply = await world.probe(action.address, 1, settings.ping_timeout_s, False)
            return link.UnderlayResult(reply.ok, action.address)
        if isinstance(action, link.SetEndpoint):
            result = await world.run_wg(self.config.wg_command, ["set", pid[0], "peer", pid[1], "endpoint",
                                                                 action.endpoint], self.config.wg_timeout_s)
            return link.SetEndpointResult(action.endpoint, result.error is None, result.error)
        world.poke(action.target)
        return None

    async def _probe_with_checks(self, pid: PeerId, target: str, settings: config_mod.TrackSettings
                                 ) -> link.ProbeResult:
        """ICMP (unless off, or the target is a check) and every check at once: any answer is
        life, as one probe reply is; the reasons of all failures are kept."""
        icmp = settings.icmp and "://" not in target
        jobs: list[Awaitable[link.ProbeResult | checks.CheckResult]] = [
            self.world.check(check, settings.check_timeout_s) for check in settings.checks]
        if icmp:
            jobs.append(self.world.probe(target, settings.ping_count, settings.ping_timeout_s,
                                         self.tracker.is_urgent(pid, asyncio.get_running_loop().time())))
        results = await asyncio.gather(*jobs)
        ran = tuple(r for r in results if isinstance(r, checks.CheckResult))
        self.tracker.record_checks(pid, ran)
        ping = next((r for r in results if isinstance(r, link.ProbeResult)), None)
        if ping is not None and ping.ok:
            return ping
        answered = [r for r in ran if r.ok]
        if answered:
            return link.ProbeResult(ok=True, rtt_ms=answered[0].rtt_ms, loss=0.0)
        reasons = [f"{r.check}: {r.error}" for r in ran] + ([f"icmp: {ping.reason}"] if ping is not None else [])
        return link.ProbeResult(ok=False, loss=1.0, reason="; ".join(reasons))

    # ---- the nflog trigger: an interface read at once on a handshake ----

    def _set_trigger(self) -> None:
        group = self.config.nflog_group
        if group is None or self.once:
            return
        assert self._tasks is not None
        trigger = HandshakeTrigger(group, self.config.nflog_min_interval_s, self.tracker.listen_ports,
                                   self._read_interface, self._tasks.create_task)
        try:
            trigger.start()
        except OSError as exc:
            # Tracking goes on at the cycle's pace: a trigger is a speed-up, not a dependency.
            log.error("nflog trigger off: %s", exc.strerror or exc)
            return
        self._trigger = trigger
        log.info("nflog trigger: group %d, a handshake reads its interface at once (at most every %g s)",
                 group, self.config.nflog_min_interval_s)

    def _stop_trigger(self) -> None:
        if self._trigger is not None:
            self._trigger.stop()
            self._trigger = None

    async def _read_interface(self, ifname: str) -> int:
        """``wg show <ifname> dump`` between cycles; a decided change is published at once.
        Returns how many peers had a new handshake."""
        if self._wg_error is not None or self._stop_signal:
            return 0
        result = await self.world.run_wg(self.config.wg_command, ["show", ifname, "dump"], self.config.wg_timeout_s)
        if result.error is not None:
            log.debug("triggered read of %s failed: %s", ifname, result.error)
            return 0
        reader = self._interface_readers.setdefault(ifname, DumpReader())
        try:
            dump = await self._parser.run(reader.read_interface, ifname, result.stdout, timeout_s=PARSE_TIMEOUT_S)
        except TimeoutError:
            self._interface_readers.pop(ifname, None)  # the late parse goes on with it: read whole next time
            return 0
        if not dump.interfaces:
            return 0
        # A whole read lists every peer, a later one those whose line changed since the last read.
        records = dump.interfaces[0].peers if isinstance(dump, Dump) else dump.changed
        before = self.tracker.changes
        new = self.tracker.observe_seen(dump.interfaces[0], records, asyncio.get_running_loop().time(),
                                        self.world.wall_ns() / 1e9)
        if self.tracker.changes != before:
            self._publish_soon()
        return new

    # ---- the fast lane: down peers probed between cycles, changes published at once ----

    async def _fast_lane(self) -> None:
        """Step the peers whose time has come (down peers, peers with probe_interval) with the
        time; their machines ask for a probe when their interval has passed. A probe in flight
        is never doubled. It sleeps until the tracker's next due time, at most once every
        FAST_LANE_TICK_S, and not at all while nothing is due: a wake-up costs about 0.3 ms of
        CPU, and a hub with no down peer should pay for none."""
        loop = asyncio.get_running_loop()
        assert self._tasks is not None
        last = loop.time()
        while True:
            due = self._fast_due = max(self.tracker.next_due(), last + FAST_LANE_TICK_S)
            if due > loop.time():
                self._fast_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._fast_wake.wait(), None if due == math.inf else due - loop.time())
                if loop.time() < due:
                    continue  # woken: something is due sooner than planned
            started = last = loop.time()
            if self._wg_error is not None:
                continue  # nothing current to judge by (the next good cycle steps them)
            wall = self.world.wall_ns() / 1e9
            for pid, action in self.tracker.tick(started, wall, _Either(self._fast, self._queued)):
                if isinstance(action, link.Probe) and not self.tracker.is_urgent(pid, started):
                    self._enqueue(pid, [action])
                    continue
                task = self._tasks.create_task(self._fast_probe(pid, action))
                self._fast[pid] = task
                task.add_done_callback(functools.partial(self._forget_fast, pid))
            # Work done in one go holds the loop: as long as it took, anything else waited.
            self._note_lag(loop.time() - started)

    def _due_at(self, when: float) -> None:
        """The tracker scheduled a peer's step: wake the fast lane if that is sooner than planned."""
        if when < self._fast_due:
            self._fast_due = when
            self._fast_wake.set()

    def _forget_fast(self, pid: PeerId, done: asyncio.Task[None]) -> None:
        if self._fast.get(pid) is done:
            del self._fast[pid]

    # ---- the slow queue: probes of links neither up nor in their first minute down ----

    def _enqueue(self, pid: PeerId, actions: list[link.Effect]) -> None:
        """A peer's probe waits here for its turn, as a small entry rather than a task: on a hub
        thousands of never-up or long-down links wait minutes at the slow kind's rate."""
        if pid in self._queued or pid in self._fast:
            return
        self._queued[pid] = actions
        self._queue_order.append(pid)
        self._slow_wake.set()

    def _slow_in_flight_cap(self) -> int:
        """Enough slow probes running that the prober's own pacing, not this cap, sets their
        pace: its rate times how long one takes (its requests, its timeout, a second of wait)."""
        settings = self.config.track
        took = settings.ping_count * probe.INTERVAL_S + settings.ping_timeout_s + 1.0
        return max(2, math.ceil(probe.slow_rate(self.config.probe_rate) * took))

    async def _slow_lane(self) -> None:
        """Starts the queued probes in their order, no more at once than the cap."""
        assert self._tasks is not None
        while True:
            while not self._queue_order or self._slow_running >= self._slow_in_flight_cap():
                self._slow_wake.clear()
                await self._slow_wake.wait()
            pid = self._queue_order.popleft()
            actions = self._queued.pop(pid, None)
            if actions is None or pid in self._fast:
                continue
            self._slow_running += 1
            task = self._tasks.create_task(self._run_on(self._peer_actions(pid, actions, [])))
            self._fast[pid] = task
            task.add_done_callback(functools.partial(self._forget_fast, pid))
            task.add_done_callback(self._slow_done)

    def _slow_done(self, _task: asyncio.Task[None]) -> None:
        self._slow_running -= 1
        self._slow_wake.set()

    async def _fast_probe(self, pid: PeerId, action: link.Effect) -> None:
        await self._run_on(self._carry_out(pid, action, 0, []))

    async def _run_on(self, work: Awaitable[None]) -> None:
        """Work for a peer between cycles; a change it decides is published at once."""
        before = self.tracker.changes
        await work
        if self.tracker.changes != before:
            self._publish_soon()

    def _publish_soon(self) -> None:
        """Hand a fresh snapshot to the outputs now, or as soon as MIN_PUBLISH_GAP_S allows."""
        loop = asyncio.get_running_loop()
        wait = self._published_at + MIN_PUBLISH_GAP_S - loop.time()
        if wait <= 0:
            self._publish_between_cycles()
        elif self._publish_later is None:
            self._publish_later = loop.call_later(wait, self._publish_between_cycles)

    def _publish_between_cycles(self) -> None:
        self._publish_later = None
        if self._stop_signal or self._tasks is None:
            return
        # Marked as published now, so that more changes meanwhile coalesce into the next one.
        self._published_at = asyncio.get_running_loop().time()
        self._tasks.create_task(self._publish_now())

    async def _publish_now(self) -> None:
        with self._working():
            snap = await self._snapshot(self._facts(self.world.wall_ns(), self._last_duration_s))
            if not self._stop_signal:
                self.outputs.hand_over(snap)

    def _note_lag(self, lag_s: float) -> None:
        self._max_lag_s = max(self._max_lag_s, lag_s)

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """A stretch of work on the loop (a cycle, a publish): the lag watchdog looks meanwhile."""
        self._busy += 1
        self._busy_event.set()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._busy_event.clear()

    async def _watch_lag(self) -> None:
        """Measure how late the loop wakes us while there is work on it (a cycle, a publish):
        the proof that nothing blocks it. Idle, it sleeps: a wake-up every LAG_PERIOD_S would
        cost more CPU than a whole cycle of a 1,000-peer hub. The fast lane, the one other
        stretch of work, times itself (``_note_lag``)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._busy_event.wait()
            while self._busy:
                before = loop.time()
                await asyncio.sleep(LAG_PERIOD_S)
                self._note_lag(loop.time() - before - LAG_PERIOD_S)


class _Either:
    """Peers in either of two maps (probes in flight, probes queued), without a set made of both."""

    def __init__(self, *maps: Container[PeerId]) -> None:
        self.maps = maps

    def __contains__(self, pid: object) -> bool:
        return any(pid in m for m in self.maps)


def _poke(target: str) -> None:
    """One UDP datagram into the tunnel (discard port): enough to make WireGuard handshake."""
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"wgtrack", (target, 9))
    except OSError as exc:
        log.debug("handshake trigger to %s failed: %s", target, exc)
