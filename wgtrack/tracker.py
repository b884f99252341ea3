"""The registry of tracked peers: one link machine per peer, fed with dumps, probe results and
handshakes seen between cycles, reconciled by (interface, public key) across dumps and reloads.

No I/O here: the daemon feeds it readings and carries out the effects it returns. What the
machines decide is told by ``peerevents`` and shown by ``views``; ``duequeue`` keeps the fast
lane's schedule."""

from __future__ import annotations

import itertools
import logging
import random
import socket
from collections import Counter
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from wgtrack import link
from wgtrack.duequeue import DueQueue
from wgtrack.model import Dump, DumpChange, InterfaceRecord, PeerRecord, short_key
from wgtrack.parts import finish, in_parts
from wgtrack.peerevents import EventLog
from wgtrack.peers import CounterMemory, PeerId, TrackedPeer, handshake_target, probe_target, reresolve_source
from wgtrack.resume import Resumption
from wgtrack.views import ViewCache

if TYPE_CHECKING:
    from wgtrack.checks import CheckResult
    from wgtrack.config import Config, TrackSettings
    from wgtrack.snapshot import CycleFacts, Snapshot
    from wgtrack.wgconf import PeerConf

log = logging.getLogger(__name__)

# Peers per part of a cycle's stepping (see observe_in_parts). Sized for the dearest case, a big
# hub's first cycles (measured at 50,000 peers: a new peer's first step 65 µs, the next cycle's
# look at it 22 µs), so that no part holds the event loop for long while an output renders in
# another thread (the GIL is shared). Later cycles look at the few peers that changed.
OBSERVE_PART = 500
Todo = list[tuple[PeerId, link.Effect]]


class Tracker:
    """All peers' link state."""

    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self._peers: dict[PeerId, TrackedPeer] = {}
        self._confs: dict[str, Mapping[str, PeerConf]] = {}
        self._interfaces: tuple[InterfaceRecord, ...] = ()  # without their peers (those are in _peers)
        self._present: set[str] = set()  # interfaces seen in the last good dump
        self._new: list[PeerId] = []  # added by the dump being observed, not yet announced
        self._counters = CounterMemory()
        self._due = DueQueue(self._peers)
        self.views = ViewCache(self._peers, self.settings, self._counters)
        self.events = EventLog(self.name_of, self._friendly, self.state_of,
                               lambda now: now + self.views.wall_offset)
        # Told when the fast lane must step a peer (the daemon wakes it when sooner than planned).
        self.on_due: Callable[[float], None] = lambda when: None
        self.changes = 0  # state changes and roams decided so far: the daemon publishes when it moves
        self.handshakes = 0  # new handshakes the cycles found (the nflog trigger's silence check)
        self.added = 0  # peers that became tracked so far (the daemon freezes the GC's view after many)
        self._dumps = 0  # dumps observed (each tracked peer carries the number of the last that listed it)
        # The cost follows the change: a cycle looks at the peers whose dump line changed and at
        # those in _clocked, whose machine time alone may move (not link.timeless).
        self._clocked: set[PeerId] = set()
        self.host = config.host or socket.gethostname()
        self.resumption: Resumption | None = None  # what the history store remembers, on a start

    # ---- configuration ----

    def set_config(self, config: Config) -> None:
        """Apply a reloaded config; every peer keeps its state."""
        self.config = config
        for tracked in self._peers.values():
            tracked.merged = None
        self.host = config.host or socket.gethostname()
        self._forget_views()

    def _forget_views(self) -> None:
        self.views.forget()
        self._clocked.update(self._peers)  # their samples may differ too (a hostname, a setting)

    def settings(self, pid: PeerId, tracked: TrackedPeer | None = None) -> TrackSettings:
        """One peer's effective settings, merged once per peer and config (not per cycle)."""
        tracked = tracked or self._peers.get(pid)
        if tracked is None:
            return self.config.settings_for(*pid)
        found = tracked.merged
        if found is None:
            found = tracked.merged = self.config.settings_for(*pid)
        return found

    def clear_interface_confs(self) -> None:
        """Forget what the wg configs said, so they are read again (on reload)."""
        self._confs.clear()
        self._forget_views()

    def known_interfaces(self) -> set[str]:  # those whose wg config was read
        return set(self._confs)

    def set_interface_conf(self, ifname: str, peers: Mapping[str, PeerConf]) -> None:
        self._confs[ifname] = peers
        self._forget_views()

    # ---- what a peer is ----

    def _conf(self, pid: PeerId) -> PeerConf | None:
        """What the interface's wg config says of the peer (a name, labels, an endpoint host)."""
        return self._confs.get(pid[0], {}).get(pid[1])

    def name_of(self, pid: PeerId) -> str:
        conf = self._conf(pid)
        return f"{pid[0]}/{conf.friendly_name if conf and conf.friendly_name else short_key(pid[1])}"

    def _friendly(self, pid: PeerId) -> str | None:
        return conf.friendly_name if (conf := self._conf(pid)) else None

    def state_of(self, pid: PeerId) -> link.LinkState | None:
        """The peer's machine state (None: not tracked)."""
        tracked = self._peers.get(pid)
        return tracked.state if tracked else None

    def tracked(self) -> list[PeerId]:
        return list(self._peers)  # every tracked peer, in the order they came

    def icmp_target(self, pid: PeerId) -> str | None:
        """Where to ping this peer: its probe target, unless ``icmp = no`` or it has none (the
        machine's probe target is then its first service check)."""
        tracked = self._peers.get(pid)
        if tracked is None or not self.settings(pid, tracked).icmp:
            return None
        return tracked.target

    def reresolve_source(self, pid: PeerId) -> tuple[str, int] | None:
        """(hostname, port) when this peer is eligible for re-resolution."""
        return reresolve_source(self.settings(pid), self._conf(pid))

    def is_up(self, pid: PeerId) -> bool:
        """Up: its probes are awaited within the cycle."""
        return (tracked := self._peers.get(pid)) is not None and (status := tracked.state.status) is not None \
            and status.is_up

    def is_urgent(self, pid: PeerId, now: float) -> bool:
        """Its probes go first when probes wait (``link.urgent``)."""
        return (tracked := self._peers.get(pid)) is not None and link.urgent(tracked.state, now)

    def listen_ports(self, netns: str = "") -> dict[int, str]:
        """listen port -> interface, from the last dump (where a logged handshake belongs), of
        one namespace ("": wgtrack's own; the trigger listens in each one apart)."""
        return {i.listen_port: i.name for i in self._interfaces
                if i.listen_port and i.name.rpartition("/")[0] == netns}

    # ---- dumps ----

    def observe_dump(self, dump: Dump | DumpChange, now: float, wall: float) -> Todo:
        """Step every peer that needs it with its sample; return the actions to carry out."""
        return [item for part in self.observe_in_parts(dump, now, wall) for item in part]

    def observe_in_parts(self, dump: Dump | DumpChange, now: float, wall: float,
                         part_size: int = OBSERVE_PART) -> Iterator[Todo]:
        """``observe_dump`` in parts of ``part_size`` peers, each part's actions as it is done:
        the daemon gives the event loop a turn between parts, so a 50,000-peer hub never holds
        it for long. Each peer is stepped whole within one part.

        A whole ``Dump`` lists every peer (one not listed is gone); a ``DumpChange`` lists the
        changed ones and the gone ones, and every other peer's line is the one it had."""
        self._dumps += 1
        self.views.wall_offset = wall - now
        whole = isinstance(dump, Dump)
        interfaces = tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark, ())
                           for i in dump.interfaces) if whole else dump.interfaces
        present = {iface.name for iface in interfaces}
        self.events.interfaces_came(dump, sorted(present - self._present), wall)
        announce_at = self.events.mark()
        gone_with: Counter[str] = Counter()  # peers that went away with their interface
        if isinstance(dump, DumpChange):
            self._remove(dump.gone, now, present, gone_with)
        listed = (r for iface in dump.interfaces for r in iface.peers) if isinstance(dump, Dump) else dump.changed
        stepping = self._step_listed(listed, now, wall)
        if whole:
            visited = yield from in_parts(stepping, part_size)
            if visited != len(self._peers):  # some went away
                stamp = self._dumps
                self._remove([pid for pid, t in self._peers.items() if t.listed_in != stamp], now, present,
                             gone_with)
        else:
            yield from in_parts(itertools.chain(stepping, self._step_clocked(now, wall)), part_size)
        new, self._new = self._new, []
        if new:
            for _ in self.events.announce_added(new, announce_at, now, lambda pid: pid in self._peers,
                                                lambda pid: pid[0] in self._present, part_size):
                yield []
        for ifname in sorted(self._present - present):
            self.events.interface_gone(ifname, gone_with[ifname], wall)
            self.views.drop_interface(ifname)
        self._present = present
        for ifname in set(self._confs) - present:
            del self._confs[ifname]
        self._interfaces = interfaces

    def _step_listed(self, listed: Iterable[PeerRecord], now: float, wall: float) -> Iterator[Todo]:
        """Each listed peer, once: a new list of its actions per peer looked at."""
        peers, stamp = self._peers, self._dumps
        for record in listed:
            pid = (record.interface, record.public_key)
            tracked = peers.get(pid)
            if tracked is None:
                tracked = self._added(pid, now)
            if tracked.listed_in == stamp:
                continue  # listed twice (a dump the kernel would not print): the first counts
            tracked.listed_in = stamp
            yield self._visit(pid, tracked, record, now, wall)

    def _step_clocked(self, now: float, wall: float) -> Iterator[Todo]:
        """The peers whose machine the clock alone may move, with the line they had."""
        peers, stamp = self._peers, self._dumps
        clocked = len(self._clocked)
        for pid in list(self._clocked):
            tracked = peers.get(pid)
            if tracked is None or tracked.record is None:
                self._clocked.discard(pid)
                continue
            if tracked.listed_in == stamp:
                continue  # stepped with its changed line just now; it stays clocked for the next cycle
            tracked.listed_in = stamp
            yield self._visit(pid, tracked, tracked.record, now, wall)
        if clocked >= 1024 and len(self._clocked) * 8 < clocked:
            self._clocked = set(self._clocked)  # a set never shrinks: after a big hub's first dump, 0.5 MB

    def _visit(self, pid: PeerId, tracked: TrackedPeer, record: PeerRecord, now: float, wall: float) -> Todo:
        settings = self.settings(pid, tracked)
        # The fast path: the same dump line (the parser hands out the same record) under the
        # same settings, and a machine that time alone does not move: nothing to do.
        if record is tracked.record and settings is tracked.settings:
            state = tracked.state
            if tracked.timeless_state is state:
                self._clocked.discard(pid)  # no clock in its rules any more: left until something changes
                return []
            if link.unchanged(state, wall, now, settings):
                if link.timeless(state, wall, now, settings):
                    tracked.timeless_state = state
                    self._clocked.discard(pid)
                return []
        return self._sample(pid, tracked, record, settings, now, wall)

    def _remove(self, gone: Iterable[PeerId], now: float, present: Container[str],
                gone_with: Counter[str]) -> None:
        """Forget peers no longer listed; a peer_removed event each, unless its interface went
        too (counted in ``gone_with``, for the interface_down event)."""
        for pid in sorted(gone):
            tracked = self._peers.get(pid)
            if tracked is None:
                continue
            self.events.removed(pid, tracked, now, announce=pid[0] in present)
            if pid[0] not in present:
                gone_with[pid[0]] += 1
            del self._peers[pid]
            conf = self._conf(pid)
            self._counters.carry(pid, tracked, tuple(sorted(conf.friendly_json.items())) if conf else (), now)
            self._clocked.discard(pid)
            self.views.aged.discard(pid)
            self.views.fresh[pid] = None  # the next snapshot drops its view

    def _added(self, pid: PeerId, now: float) -> TrackedPeer:
        tracked = self._peers[pid] = TrackedPeer()
        self.added += 1
        self._counters.restore(pid, tracked, now)
        if self.resumption is not None:
            self.resumption.seed(pid, tracked, now)
        self._new.append(pid)  # its peer_added event: made after the stepping
        return tracked

    def _sample(self, pid: PeerId, tracked: TrackedPeer, record: PeerRecord, settings: TrackSettings, now: float,
                wall: float) -> Todo:
        """The full path: one Sample from the record and the settings, one step."""
        if record.latest_handshake > tracked.state.latest_handshake and tracked.state.status is not None:
            self.handshakes += 1
        before, sampled = tracked.record, tracked.settings
        if before is None or sampled is None or before.allowed_ips != record.allowed_ips \
                or sampled.ping_target != settings.ping_target:
            tracked.target = probe_target(record, settings.ping_target)
            tracked.handshake_target = handshake_target(record, tracked.target)
        tracked.record = record
        tracked.seen = None
        tracked.settings = settings
        if record.latest_handshake:
            self.views.aged.add(pid)
        else:
            self.views.aged.discard(pid)
        tracked.update(record.rx_bytes, record.tx_bytes)
        target = tracked.target if settings.icmp else None
        if target is None and settings.checks:
            # The checks are the probe: the machine needs a target to ask for probes, the
            # daemon asks icmp_target whether to ping (actions.Actions.probe_with_checks).
            target = settings.checks[0].text
        source = self.reresolve_source(pid)
        sample = link.Sample(
            latest_handshake=record.latest_handshake, rx_bytes=record.rx_bytes,
            keepalive_s=record.keepalive_s, wall=wall, probe_target=target, endpoint=record.endpoint,
            hostname=source[0] if source else None, port=source[1] if source else None,
            # the jitter draw serves re-resolution only: a peer without a hostname shares one 0.0
            handshake_target=tracked.handshake_target, rand=self.rng.random() if source else 0.0,
        )
        return [(pid, a) for a in self._step(pid, tracked, sample, now)]

    # ---- between cycles ----

    def observe_seen(self, iface: InterfaceRecord, records: Iterable[PeerRecord], now: float, wall: float) -> int:
        """One interface read between cycles (the nflog trigger): each known peer's handshake
        and endpoint are news (``link.Seen``); peers new to wgtrack wait for the cycle.
        Returns how many peers had a new handshake."""
        if iface.name not in self._present:
            return 0
        new = 0
        for record in records:
            pid = (iface.name, record.public_key)
            tracked = self._peers.get(pid)
            if tracked is not None:
                new += record.latest_handshake > tracked.state.latest_handshake
                # tracked.record stays the cycle's: the fast path compares the next dump with it
                tracked.seen = record
                if record.latest_handshake:
                    self.views.aged.add(pid)
                tracked.update(record.rx_bytes, record.tx_bytes)
                self._step(pid, tracked, link.Seen(record.latest_handshake, record.endpoint, wall), now)
        self._interfaces = tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark, ())
                                 if i.name == iface.name else i for i in self._interfaces)
        return new

    def observe(self, pid: PeerId, obs: link.Observation, now: float) -> list[link.Effect]:
        """Feed a probe, resolve or set-endpoint result; return the follow-up actions."""
        tracked = self._peers.get(pid)
        if tracked is None:
            return []  # the peer vanished while the action ran
        return self._step(pid, tracked, obs, now)

    def tick(self, now: float, wall: float, busy: Container[PeerId], limit: int | None = None) -> Todo:
        """The fast lane: step the peers whose probe time has come (down peers, and peers with
        probe_interval; at most ``limit``) with the time; their probes. A ``busy`` peer has a
        probe in flight: its result reschedules it."""
        todo: Todo = []
        for pid, tracked in self._due.ready(now, limit):
            if pid not in busy:
                todo.extend((pid, a) for a in self._step(pid, tracked, link.Tick(wall), now))
        return todo

    def next_due(self) -> float:
        """When the fast lane has a peer to step next (inf: none)."""
        return self._due.next_due()

    def _step(self, pid: PeerId, tracked: TrackedPeer, obs: link.Observation, now: float) -> list[link.Effect]:
        settings = self.settings(pid)
        tracked.state, actions = link.step(tracked.state, obs, now, settings)
        if tracked.resumed is not None and self.resumption is not None:
            actions = self.resumption.settle(tracked, actions, now)
        self.views.fresh[pid] = None
        self._clocked.add(pid)  # the next cycle looks again (and drops it if it is timeless)
        due = link.tick_due(tracked.state, settings)
        if self._due.schedule(pid, tracked, due):
            self.on_due(due)
        if actions:
            tracked.after(actions)
            self.changes += self.events.said(pid, tracked, actions, now)
        return [a for a in actions if isinstance(a, link.EFFECTS)]

    def record_probe(self, pid: PeerId, ping: link.ProbeResult | None, now: float, wall: float,
                     checks: tuple[CheckResult, ...] | None = None, mtu: link.MtuResult | None = None) -> None:
        """A probe's echoes, service checks or path-MTU search, for the views; the machine gets
        the verdict from the caller, and the window's new figures from here (up or degraded)."""
        if (tracked := self._peers.get(pid)) is None:
            return
        if checks is not None:
            self.events.checks_ran(pid, tracked.checks, checks)
            tracked.checks = checks
        if mtu is not None:
            tracked.record_mtu(mtu)
        if ping is not None and ping.sent:
            tracked.record_echoes(wall, ping.sent, ping.rtts)
        measured = tracked.measured(wall, force=mtu is not None) if (ping and ping.sent) or mtu else None
        if measured is not None:
            self._step(pid, tracked, measured, now)  # (health asks for no effects)
        self.views.fresh[pid] = None

    def forget(self) -> None:  # wg could not be read: drop the picture of interfaces, keep the peers' memory
        self._interfaces = ()

    # ---- snapshots ----

    def snapshot(self, now: float, facts: CycleFacts) -> Snapshot:
        """The immutable picture for the outputs (``now`` is monotonic, for state ages)."""
        return finish(self.snapshot_in_parts(now, facts))

    def snapshot_in_parts(self, now: float, facts: CycleFacts) -> Generator[None, None, Snapshot]:
        """``snapshot`` in parts: yields between parts of the views (the daemon gives the loop a
        turn there) and returns the snapshot, with the events since the last."""
        return self.views.snapshot_in_parts(self._interfaces, self._confs, facts, self.config.cycle_time_s,
                                            self.events.drain, self.host)

