"""One cycle: read every interface (``wg`` under a timeout, parsed off the loop), step every
peer's machine in parts, run the actions they ask for, hand one snapshot to the outputs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from wgtrack import heap, link
from wgtrack.dump import PARSE_TIMEOUT_S, DumpReader, split_qualified
from wgtrack.netnsreads import NamespaceReads
from wgtrack.retry import FailureRun
from wgtrack.snapshot import CycleFacts
from wgtrack.wgcmd import WgResult
from wgtrack.wgconf import load_interface_conf
from wgtrack.workers import Workers

if TYPE_CHECKING:
    from wgtrack.config import Config
    from wgtrack.lanes import Lanes
    from wgtrack.loopwatch import LoopWatch
    from wgtrack.model import Dump, DumpChange
    from wgtrack.peers import PeerId
    from wgtrack.publisher import Publisher
    from wgtrack.tracker import Tracker
    from wgtrack.world import World

log = logging.getLogger(__name__)

IO_TIMEOUT_S = 10.0  # reading a config file or a wg config (a hung NFS mount, say)
SETTLE_AFTER_ADDED = 1_000  # peers added since the heap was last settled that call for it again


class Cycle:
    """Runs cycles and keeps what the tracker's own metrics report of them (count, duration,
    errors, the last good read)."""

    def __init__(self, config: Config, tracker: Tracker, world: World, lanes: Lanes, publisher: Publisher,
                 watch: LoopWatch, io: Workers) -> None:
        self.config, self.tracker, self.world = config, tracker, world
        self.lanes, self.publisher, self.watch, self.io = lanes, publisher, watch, io
        # Parsing 50,000 dump lines takes longer than the loop may be held: one thread of its own
        # (one, so that each DumpReader is only ever used by one thread at a time).
        self.parser = Workers("parse", threads=1)
        self._reader = DumpReader()  # used on the parse thread only
        self.namespaces = NamespaceReads(world.run_wg, io)  # [general] netns
        self.number = 0
        self.errors: dict[str, int] = {"wg": 0, "parse": 0, "output": 0}
        self.wg_error: str | None = None
        self.last_success_ns = 0
        self.started_ns = world.clock.wall_ns()
        self.last_duration_s = 0.0
        # Told the count of handshakes seen so far after each cycle's stepping (the nflog
        # trigger's health check: triggered.TriggeredReads.cycle).
        self.after_stepping: Callable[[int], None] = lambda handshakes: None
        self._wg_failures = FailureRun(log, self.config.wg_command, logging.ERROR)
        self._dump_problem_kinds: set[str] = set()  # kinds logged in the current run of bad dumps
        self._heap = heap.HeapUpkeep(SETTLE_AFTER_ADDED)

    def reload(self, old: Config, new: Config) -> None:
        self.config = new

    def facts(self, wall_ns: int | None = None, stopped: bool = False) -> CycleFacts:
        """What the tracker's own metrics say now (the last cycle's duration)."""
        return CycleFacts(time_ns=self.world.clock.wall_ns() if wall_ns is None else wall_ns, cycle=self.number,
                          wg_error=self.wg_error, cycle_duration_s=0.0 if stopped else round(self.last_duration_s, 6),
                          started_ns=self.started_ns, loop_lag_ms=round(self.watch.max_lag_s * 1000, 3),
                          last_success_ns=self.last_success_ns, errors=tuple(sorted(self.errors.items())),
                          stopped=stopped)

    async def run(self) -> None:
        with self.watch.working():
            await self._run()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.number += 1
        wall_ns = self.world.clock.wall_ns()
        dump = await self._read(wall_ns)
        if dump is not None:
            self._log_dump_problems(dump.problems, dump.bad_lines)
            await self._read_new_interface_confs([i.name for i in dump.interfaces])
            todo: list[tuple[PeerId, link.Effect]] = []
            for part in self.tracker.observe_in_parts(dump, loop.time(), wall_ns / 1e9):
                todo.extend(part)
                self._heap.added(self.tracker.added)
                await asyncio.sleep(0)  # a turn for the loop between parts: a big hub never holds it
            await self.lanes.route(todo)
        if self.tracker.resumption is not None:
            self.tracker.resumption.expire(loop.time())
        self.after_stepping(self.tracker.handshakes)
        self.last_duration_s = loop.time() - started
        snap = await self.publisher.snapshot(self.facts(wall_ns))
        self.watch.take()
        self.publisher.offer(snap)
        self._heap.cycle_done(self.tracker.added)
        log.debug("cycle %d done in %.3f s", self.number, loop.time() - started)

    async def _read(self, wall_ns: int) -> Dump | DumpChange | None:
        """This cycle's dump, or None (the error said once per run, every peer forgotten)."""
        result = await self.world.read_wg(self.config.wg_command, self.config.wg_timeout_s)
        result = await self.namespaces.read(self.config.netns, self.config.wg_command, self.config.wg_timeout_s, result)
        dump = None
        if result.error is None:
            try:
                dump = await self.parser.run(self._reader.read, result.stdout, timeout_s=PARSE_TIMEOUT_S)
            except TimeoutError:
                self._reader = DumpReader()  # the late parse goes on with the old one: read whole next time
                result = WgResult("", f"parsing the dump took more than {PARSE_TIMEOUT_S:g} s")
        if result.error is not None or dump is None:
            self._wg_failures.failed(result.error or "", "cannot read WireGuard state, outputs carry no peer data "
                                                        "until it works")
            self.wg_error = result.error
            self.errors["wg"] += 1
            self.tracker.forget()
            return None
        self._wg_failures.recovered("WireGuard state readable again")
        self.wg_error = None
        self.last_success_ns = wall_ns
        return dump

    def _log_dump_problems(self, problems: tuple[tuple[str, int, int], ...], bad_lines: int) -> None:
        """One line per kind of problem per run of bad dumps, with its count; never the line."""
        self.errors["parse"] += bad_lines
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
        for name in (name for name in present if name not in known):
            try:
                netns, ifname = split_qualified(name)
                # Another namespace's wg-quick configs are where ip netns exec shows them: /etc/netns/<name>/
                folder = Path(f"/etc/netns/{netns}/wireguard") if netns else Path(self.config.wg_config_dir)
                conf = await self.io.run(load_interface_conf, folder, ifname, timeout_s=IO_TIMEOUT_S)
            except TimeoutError:
                log.warning("reading the wg config of %s timed out; going on without it", name)
                conf = {}
            self.tracker.set_interface_conf(name, conf)
