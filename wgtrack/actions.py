"""Carrying out what the link machines ask for: probes (with service checks), re-resolution,
``wg set``, a packet that starts a handshake; each result goes back to its machine, whose
follow-up actions are carried out in turn (a chain, bounded)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wgtrack import checks, link, netns
from wgtrack.dump import split_qualified

if TYPE_CHECKING:
    from wgtrack.config import Config, TrackSettings
    from wgtrack.peers import PeerId
    from wgtrack.tracker import Tracker
    from wgtrack.world import ResolverLike, World

log = logging.getLogger(__name__)

MAX_ACTION_CHAIN = 8  # probe -> resolve -> set -> probe ... never loops unbounded
Finished = Callable[["PeerId", list[link.Effect], bool], None]  # (peer, follow-up effects, changed)


class Actions:
    """Performs one peer's effects; re-resolutions and path-MTU searches always in the
    background (a dead DNS server or a search's lost echoes delay nobody), one of each at a
    time per peer."""

    def __init__(self, config: Config, tracker: Tracker, world: World) -> None:
        self.config, self.tracker, self.world = config, tracker, world
        self.resolver: ResolverLike = world.resolver(config.hosts_file, config.dns_timeout_s)
        self.tasks: asyncio.TaskGroup | None = None  # set while the daemon runs
        self._background: dict[tuple[PeerId, type], asyncio.Task[None]] = {}  # by peer and kind

    def reload(self, old: Config, new: Config) -> None:
        self.config = new
        self.resolver = self.world.resolver(new.hosts_file, new.dns_timeout_s)

    def cancel(self) -> None:
        for task in self._background.values():
            task.cancel()

    async def run(self, pid: PeerId, actions: list[link.Effect], spawned: list[asyncio.Task[None]]) -> None:
        """A peer's actions in order; re-resolutions started are added to ``spawned``."""
        for action in actions:
            await self._dispatch(pid, action, 0, spawned)

    async def _dispatch(self, pid: PeerId, action: link.Effect, depth: int,
                        spawned: list[asyncio.Task[None]]) -> None:
        """The one dispatch, at every depth of a chain: a Resolve goes to the background;
        anything else is awaited here."""
        if depth >= MAX_ACTION_CHAIN:
            log.warning("%s: action chain cut at %d steps", self.tracker.name_of(pid), depth)
            return
        if isinstance(action, link.Resolve | link.SearchMtu):
            # In the background, one of each kind at a time per peer: a search takes seconds
            # (timeouts of lost big echoes), a dead DNS server as long as its deadline.
            key = (pid, type(action))
            running = self._background.get(key)
            if (running is None or running.done()) and self.tasks is not None:
                task = self.tasks.create_task(self.carry_out(pid, action, depth, spawned))
                self._background[key] = task
                task.add_done_callback(lambda done: self._forget_background(key, done))
                if isinstance(action, link.Resolve):
                    spawned.append(task)  # the cycle waits a little for these, not for a search
            return
        await self.carry_out(pid, action, depth, spawned)

    def _forget_background(self, key: tuple[PeerId, type], done: asyncio.Task[None]) -> None:
        if self._background.get(key) is done:
            del self._background[key]

    async def carry_out(self, pid: PeerId, action: link.Effect, depth: int = 0,
                        spawned: list[asyncio.Task[None]] | None = None) -> None:
        """Perform one action and feed its result to the peer's machine."""
        try:
            observation = await self._perform(pid, action)
        except Exception:  # one peer's trouble must never stop the others
            log.exception("%s: %s failed", self.tracker.name_of(pid), type(action).__name__)
            return
        if observation is None:
            return
        for follow in self.tracker.observe(pid, observation, asyncio.get_running_loop().time()):
            await self._dispatch(pid, follow, depth + 1, [] if spawned is None else spawned)

    async def _perform(self, pid: PeerId, action: link.Effect) -> link.Observation | None:
        settings = self.tracker.settings(pid)
        world = self.world
        if isinstance(action, link.Probe):
            if settings.checks:
                return await self.probe_with_checks(pid, self.tracker.icmp_target(pid), settings, action.count)
            count = max(action.count, settings.ping_count)
            answer = await world.probe(netns.target(pid[0], action.target), count, settings.ping_timeout_s,
                                       self.tracker.is_urgent(pid, asyncio.get_running_loop().time()))
            self.tracker.record_probe(pid, answer, asyncio.get_running_loop().time(), world.clock.wall_ns() / 1e9)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: probe of %d echo(es): %s", self.tracker.name_of(pid), count,
                          f"{answer.rtt_ms} ms" if answer.ok else answer.reason)
            return answer
        if isinstance(action, link.SearchMtu):
            return await self._search_mtu(pid, settings.ping_timeout_s)
        if isinstance(action, link.Resolve):
            log.info("%s: re-resolving %s", self.tracker.name_of(pid), action.hostname)
            return await self.resolver.resolve(action.hostname)
        if isinstance(action, link.ProbeUnderlay):
            # Outside the tunnel: the endpoint's own address, through the normal routes.
            reply = await world.probe(netns.target(pid[0], action.address), 1, settings.ping_timeout_s, False)
            return link.UnderlayResult(reply.ok, action.address)
        if isinstance(action, link.SetEndpoint):
            argv = netns.command(pid[0], [self.config.wg_command, "set", pid[0], "peer", pid[1], "endpoint",
                                     action.endpoint])
            result = await world.run_wg(argv[0], argv[1:], self.config.wg_timeout_s)
            return link.SetEndpointResult(action.endpoint, result.error is None, result.error)
        world.send_handshake_packet(netns.target(pid[0], action.target))
        return None

    def echo_now(self, pid: PeerId, action: link.Probe, finished: Finished) -> bool:
        """A plain probe of an up link as one echo request with no task (``World.echo``): the
        prober's callback records its result and steps the machine, and ``finished`` gets the
        follow-up effects and whether anything changed. False: it takes the ordinary path
        (service checks, a burst, several echoes, icmp = no, a faked prober)."""
        send, settings = self.world.echo, self.tracker.settings(pid)
        if send is None or max(action.count, settings.ping_count) != 1 or settings.checks or not settings.icmp:
            return False
        loop = asyncio.get_running_loop()

        def on_reply(rtt: float | None, error: str) -> None:
            changes, follow = self.tracker.changes, []
            try:
                result = link.ProbeResult(ok=True, rtt_ms=round(rtt, 3), loss=0.0, sent=1, rtts=(rtt,)) \
                    if rtt is not None else link.ProbeResult(ok=False, loss=1.0, reason=error or "no reply",
                                                             sent=0 if error else 1)
                now = loop.time()
                self.tracker.record_probe(pid, result, now, self.world.clock.wall_ns() / 1e9)
                follow = self.tracker.observe(pid, result, now)
            except Exception:  # one peer's trouble must never stop the others (nor the prober's reader)
                log.exception("%s: a probe's result failed", self.tracker.name_of(pid))
            finished(pid, follow, self.tracker.changes != changes)

        send(netns.target(pid[0], action.target), settings.ping_timeout_s, on_reply)
        return True

    async def _search_mtu(self, pid: PeerId, timeout_s: float) -> link.MtuResult:
        target = self.tracker.icmp_target(pid)
        if target is None:  # the checks alone probe it (icmp = no): nothing to send DF echoes to
            result = link.MtuResult(None, None, "no path-MTU search: no ICMP probe target (icmp = no)")
        else:
            result = await self.world.search_mtu(netns.target(pid[0], target), timeout_s)
        # (a short path is logged once, as the move to up:degraded; not at each search)
        self.tracker.record_probe(pid, None, asyncio.get_running_loop().time(), self.world.clock.wall_ns() / 1e9,
                                  mtu=result)
        return result

    async def probe_with_checks(self, pid: PeerId, icmp_target: str | None,
                                settings: TrackSettings, count: int = 0) -> link.ProbeResult:
        """ICMP to ``icmp_target`` (None: icmp = no, or no address to ping) and every check at
        once: any answer is life, as one probe reply is; the reasons of all failures are kept."""
        inside, _ = split_qualified(pid[0])  # another namespace: the checks run from inside it
        jobs: list[Awaitable[link.ProbeResult | checks.CheckResult]] = [
            self.world.check(dataclasses.replace(check, netns=inside) if inside else check, settings.check_timeout_s)
            for check in settings.checks]
        if icmp_target is not None:
            jobs.append(self.world.probe(netns.target(pid[0], icmp_target), max(count, settings.ping_count),
                                         settings.ping_timeout_s,
                                         self.tracker.is_urgent(pid, asyncio.get_running_loop().time())))
        results = await asyncio.gather(*jobs)
        ran = tuple(r for r in results if isinstance(r, checks.CheckResult))
        ping = next((r for r in results if isinstance(r, link.ProbeResult)), None)
        self.tracker.record_probe(pid, ping, asyncio.get_running_loop().time(), self.world.clock.wall_ns() / 1e9, ran)
        if ping is not None and ping.ok:
            return ping
        answered = [r for r in ran if r.ok]
        if answered:
            return link.ProbeResult(ok=True, rtt_ms=answered[0].rtt_ms, loss=0.0)
        reasons = [f"{r.check}: {r.error}" for r in ran] + ([f"icmp: {ping.reason}"] if ping is not None else [])
        return link.ProbeResult(ok=False, loss=1.0, reason="; ".join(reasons))
