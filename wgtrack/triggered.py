"""Reads between cycles: the nflog trigger saw a handshake on a listen port, so that interface
is read at once (``wg show <ifname> dump``) and a decided change is published at once. With
``manage_rule``, the nft rules that feed the trigger follow the listen ports (``nftrule``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from wgtrack.dump import PARSE_TIMEOUT_S, DumpReader
from wgtrack.model import Dump
from wgtrack.nftrule import ManagedRule
from wgtrack.trigger import HandshakeTrigger

if TYPE_CHECKING:
    from wgtrack.config import Config
    from wgtrack.publisher import Publisher
    from wgtrack.tracker import Tracker
    from wgtrack.workers import Workers
    from wgtrack.world import World

log = logging.getLogger(__name__)


class TriggeredReads:
    """The trigger's lifecycle (it follows the config across reloads) and the reads it asks for."""

    def __init__(self, config: Config, tracker: Tracker, world: World, parser: Workers, publisher: Publisher,
                 readable: Callable[[], bool], stopping: Callable[[], bool], once: bool = False) -> None:
        self.config, self.tracker, self.world, self.parser, self.publisher = config, tracker, world, parser, publisher
        self._readable, self._stopping, self.once = readable, stopping, once
        self.tasks: asyncio.TaskGroup | None = None  # set while the daemon runs
        self._trigger: HandshakeTrigger | None = None
        self._readers: dict[str, DumpReader] = {}  # one reader per interface
        self._rule: ManagedRule | None = None
        self._rule_task: asyncio.Task[None] | None = None  # one nft run at a time

    def start(self) -> None:
        group = self.config.nflog_group
        if group is None or self.once:
            return
        assert self.tasks is not None
        trigger = HandshakeTrigger(group, self.config.nflog_min_interval_s, self.tracker.listen_ports,
                                   self._read_interface, self.tasks.create_task)
        rule = ManagedRule(group, self.world.run_program)
        try:
            trigger.start()
        except OSError as exc:
            # Tracking goes on at the cycle's pace: a trigger is a speed-up, not a dependency.
            log.error("nflog trigger off: %s", exc.strerror or exc)
            return
        self._trigger = trigger
        if self.config.nflog_manage_rule:
            self._rule = rule  # installed after each cycle, once the listen ports are known
        else:
            self._nft(rule.remove())  # a table of ours that a crashed run with manage_rule left behind
        log.info("nflog trigger: group %d, a handshake reads its interface at once (at most every %g s)",
                 group, self.config.nflog_min_interval_s)

    def stop(self) -> None:
        """Stop listening; the managed table stays until ``close`` (or a new start replaces it)."""
        if self._trigger is not None:
            self._trigger.stop()
            self._trigger = None

    async def close(self) -> None:
        """On the way out: the managed table goes (each nft run has its deadline, nftrule.NFT_TIMEOUT_S)."""
        rule, self._rule = self._rule, None
        if self._rule_task is not None:
            self._rule_task.cancel()  # kills its nft; the removal below replaces whatever it did
        if rule is not None:
            await rule.remove()

    def reload(self, old: Config, new: Config) -> None:
        self.config = new
        if (old.nflog_group, old.nflog_min_interval_s, old.nflog_manage_rule) != \
                (new.nflog_group, new.nflog_min_interval_s, new.nflog_manage_rule):
            rule, self._rule = self._rule, None
            self.stop()
            self.start()
            if rule is not None and self._rule is None:  # trigger or manage_rule off: its table goes
                self._nft(rule.remove())

    def cycle(self, handshakes: int) -> None:
        """After each cycle's stepping: the trigger checks that it hears what cycles find, and the
        managed rules follow the listen ports."""
        if self._trigger is not None:
            self._trigger.cycle(handshakes)
        if self._rule is not None:
            self._nft(self._rule.follow(self.tracker.listen_ports()))

    def _nft(self, job: Coroutine[Any, Any, None]) -> None:
        """Run one nft job unless one is running (a cycle's follow is retried by the next)."""
        if self.tasks is None or (self._rule_task is not None and not self._rule_task.done()):
            job.close()
            return
        self._rule_task = self.tasks.create_task(job)

    async def _read_interface(self, ifname: str) -> int:
        """Read one interface; returns how many peers had a new handshake."""
        if not self._readable() or self._stopping():
            return 0
        result = await self.world.run_wg(self.config.wg_command, ["show", ifname, "dump"], self.config.wg_timeout_s)
        if result.error is not None:
            log.debug("triggered read of %s failed: %s", ifname, result.error)
            return 0
        reader = self._readers.setdefault(ifname, DumpReader())
        try:
            dump = await self.parser.run(reader.read_interface, ifname, result.stdout, timeout_s=PARSE_TIMEOUT_S)
        except TimeoutError:
            self._readers.pop(ifname, None)  # the late parse goes on with it: read whole next time
            return 0
        if not dump.interfaces:
            return 0
        # A whole read lists every peer, a later one those whose line changed since the last read.
        records = dump.interfaces[0].peers if isinstance(dump, Dump) else dump.changed
        before = self.tracker.changes
        new = self.tracker.observe_seen(dump.interfaces[0], records, asyncio.get_running_loop().time(),
                                        self.world.clock.wall_ns() / 1e9)
        if self.tracker.changes != before:
            self.publisher.soon()
        return new
