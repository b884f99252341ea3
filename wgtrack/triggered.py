"""Reads between cycles: the nflog trigger saw a handshake on a listen port, so that interface
is read at once (``wg show <ifname> dump``) and a decided change is published at once. With
``manage_rule``, the nft rules that feed the trigger follow the listen ports (``nftrule``)."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wgtrack import netns
from wgtrack.dump import PARSE_TIMEOUT_S, DumpReader
from wgtrack.model import Dump
from wgtrack.nftrule import ManagedRule, RunNft
from wgtrack.trigger import HandshakeTrigger
from wgtrack.wgcmd import WgResult

if TYPE_CHECKING:
    from wgtrack.config import Config
    from wgtrack.publisher import Publisher
    from wgtrack.tracker import Tracker
    from wgtrack.workers import Workers
    from wgtrack.world import World

log = logging.getLogger(__name__)


@dataclass
class _Site:
    """The trigger of one namespace ("": wgtrack's own): its nflog socket, and its managed table."""

    netns: str
    trigger: HandshakeTrigger
    rule: ManagedRule | None
    task: asyncio.Task[None] | None = None  # its one nft run at a time


class TriggeredReads:
    """The trigger's lifecycle (it follows the config across reloads, and the namespaces as they
    come and go) and the reads it asks for."""

    def __init__(self, config: Config, tracker: Tracker, world: World, parser: Workers, publisher: Publisher,
                 readable: Callable[[], bool], stopping: Callable[[], bool], once: bool = False,
                 namespaces: Callable[[], dict[str, netns.Namespace]] = dict) -> None:
        self.config, self.tracker, self.world, self.parser, self.publisher = config, tracker, world, parser, publisher
        self._readable, self._stopping, self.once = readable, stopping, once
        self._namespaces = namespaces  # the other namespaces read now (netnsreads)
        self.tasks: asyncio.TaskGroup | None = None  # set while the daemon runs
        self._sites: dict[str, _Site] = {}
        self._readers: dict[str, DumpReader] = {}  # one reader per interface
        self._leftovers: set[asyncio.Task[None]] = set()  # removals of tables whose site stopped

    def start(self) -> None:
        if self.config.nflog_group is None or self.once:
            return
        self._open("", None)
        for ns in self._namespaces().values():
            self._open(ns.name, ns)

    def _open(self, name: str, ns: netns.Namespace | None) -> None:
        group = self.config.nflog_group
        assert group is not None and self.tasks is not None
        opener = socket.socket if ns is None else functools.partial(netns.open_socket, ns.net)
        run = self.world.run_program if ns is None else functools.partial(_run_in, self.world.run_program, ns)
        trigger = HandshakeTrigger(group, self.config.nflog_min_interval_s,
                                   functools.partial(self.tracker.listen_ports, name), self._read_interface,
                                   self.tasks.create_task, opener=opener)
        where = f" in netns {name}" if name else ""
        try:
            trigger.start()
        except OSError as exc:
            # Tracking goes on at the cycle's pace: a trigger is a speed-up, not a dependency.
            log.error("nflog trigger%s off: %s", where, exc.strerror or exc)
            return
        rule = ManagedRule(group, run)
        site = self._sites[name] = _Site(name, trigger, rule if self.config.nflog_manage_rule else None)
        if site.rule is None:
            self._nft(site, rule.remove())  # a table of ours that a crashed run with manage_rule left behind
        log.info("nflog trigger%s: group %d, a handshake reads its interface at once (at most every %g s)",
                 where, group, self.config.nflog_min_interval_s)

    def stop(self) -> None:
        """Stop listening; the managed tables stay until ``close`` (or a new start replaces them)."""
        for site in self._sites.values():
            site.trigger.stop()

    async def close(self) -> None:
        """On the way out: the managed tables go, in parallel (each nft run has its deadline,
        nftrule.NFT_TIMEOUT_S)."""
        sites, self._sites = list(self._sites.values()), {}
        for site in sites:
            if site.task is not None:
                site.task.cancel()  # kills its nft; the removal below replaces whatever it did
        await asyncio.gather(*(site.rule.remove() for site in sites if site.rule is not None))

    def reload(self, old: Config, new: Config) -> None:
        self.config = new
        if (old.nflog_group, old.nflog_min_interval_s, old.nflog_manage_rule) != \
                (new.nflog_group, new.nflog_min_interval_s, new.nflog_manage_rule):
            self.stop()
            before, self._sites = self._sites, {}
            self.start()
            for name, site in before.items():
                if site.rule is not None and (name not in self._sites or self._sites[name].rule is None):
                    self._spawn_leftover(site.rule.remove())  # trigger or manage_rule off: its table goes

    def cycle(self, handshakes: int) -> None:
        """After each cycle's stepping: the trigger checks that it hears what cycles find, the
        sites follow the namespaces, and the managed rules follow the listen ports."""
        if self.config.nflog_group is None or self.once or self.tasks is None:
            return
        present = self._namespaces()
        for name in [n for n in self._sites if n and n not in present]:
            self._sites.pop(name).trigger.stop()  # the namespace went, and its table with it
        for name, ns in present.items():
            if name not in self._sites:
                self._open(name, ns)
        own = self._sites.get("")
        if own is not None:
            own.trigger.cycle(handshakes)  # the silence check: handshakes are counted for all at once
        for site in self._sites.values():
            if site.rule is not None:
                self._nft(site, site.rule.follow(self.tracker.listen_ports(site.netns)))

    def _nft(self, site: _Site, job: Coroutine[Any, Any, None]) -> None:
        """Run one nft job of a site unless one is running (a cycle's follow is retried by the next)."""
        if self.tasks is None or (site.task is not None and not site.task.done()):
            job.close()
            return
        site.task = self.tasks.create_task(job)

    def _spawn_leftover(self, job: Coroutine[Any, Any, None]) -> None:
        if self.tasks is None:
            job.close()
            return
        task = self.tasks.create_task(job)
        self._leftovers.add(task)
        task.add_done_callback(self._leftovers.discard)

    async def _read_interface(self, ifname: str) -> int:
        """Read one interface; returns how many peers had a new handshake."""
        if not self._readable() or self._stopping():
            return 0
        argv = netns.command(ifname, [self.config.wg_command, "show", ifname, "dump"])
        result = await self.world.run_wg(argv[0], argv[1:], self.config.wg_timeout_s)
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


async def _run_in(run: RunNft, ns: netns.Namespace, argv: list[str], timeout_s: float,
                  stdin: bytes | None) -> WgResult:
    """``run`` (nft) inside ``ns``."""
    return await run([*ns.enter, *argv], timeout_s, stdin)
