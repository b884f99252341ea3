"""Reads between cycles: the nflog trigger saw a handshake on a listen port, so that interface
is read at once (``wg show <ifname> dump``) and a decided change is published at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from wgtrack.dump import PARSE_TIMEOUT_S, DumpReader
from wgtrack.model import Dump
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

    def start(self) -> None:
        group = self.config.nflog_group
        if group is None or self.once:
            return
        assert self.tasks is not None
        trigger = HandshakeTrigger(group, self.config.nflog_min_interval_s, self.tracker.listen_ports,
                                   self._read_interface, self.tasks.create_task)
        try:
            trigger.start()
        except OSError as exc:
            # Tracking goes on at the cycle's pace: a trigger is a speed-up, not a dependency.
            log.error("nflog trigger off: %s", exc.strerror or exc)
            return
        self._trigger = trigger
        log.info("nflog trigger: group %d, a handshake reads its interface at once (at most every %g s)",
                 group, self.config.nflog_min_interval_s)

    def stop(self) -> None:
        if self._trigger is not None:
            self._trigger.stop()
            self._trigger = None

    def reload(self, old: Config, new: Config) -> None:
        self.config = new
        if (old.nflog_group, old.nflog_min_interval_s) != (new.nflog_group, new.nflog_min_interval_s):
            self.stop()
            self.start()

    def cycle(self, handshakes: int) -> None:
        """After each cycle's stepping: the trigger checks that it hears what cycles find."""
        if self._trigger is not None:
            self._trigger.cycle(handshakes)

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
