"""Keeps one link machine per peer and turns dumps and probe results into snapshots.

No I/O here: the daemon feeds it readings and carries out the actions it returns.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import math
import random
import socket
from collections import Counter
from collections.abc import Callable, Container, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from wgtrack import __version__, link
from wgtrack.checks import CheckResult
from wgtrack.config import Config, TrackSettings
from wgtrack.events import NOTHING, Event
from wgtrack.model import (
    Dump,
    DumpChange,
    InterfaceRecord,
    PeerRecord,
    is_ip_literal,
    short_key,
    single_host_address,
    split_endpoint,
)
from wgtrack.snapshot import CycleFacts, InterfaceView, PeerView, Snapshot, Totals, tally
from wgtrack.wgconf import PeerConf

log = logging.getLogger(__name__)

PeerId = tuple[str, str]  # (interface, public key)
Labels = tuple[tuple[str, str], ...]  # a friendly_json group


CARRIED_S = 86_400.0  # how long a removed peer's counter totals are remembered
CARRIED_MAX = 100_000  # and how many at most (the oldest go first)
# Peers per part of a cycle's stepping (see observe_in_parts) and of building a snapshot. Sized
# for the dearest case, a big hub's first cycles (measured at 50,000 peers: a new peer's first
# step 65 µs, the next cycle's look at it 22 µs, a first view 20 µs), so that no part holds the
# event loop for long while an output renders in another thread (the GIL is shared). Later
# cycles look at the few peers that changed, so small parts cost them next to nothing.
OBSERVE_PART = 500
SNAPSHOT_PART = 1_000


@dataclass(slots=True)
class Counters:
    """A peer's byte counters as exported: WireGuard's, plus what earlier resets took away.

    WireGuard's counters start again from 0 when an interface is recreated or a peer removed and
    added. Exported counters must not go down (Prometheus ``_total``, Telegraf derivatives), so
    wgtrack carries the offset: a drop adds the last value seen to the base.
    """

    rx_base: int = 0
    tx_base: int = 0
    rx: int = 0  # WireGuard's own, last seen
    tx: int = 0

    def update(self, rx: int, tx: int) -> None:
        if rx < self.rx:
            self.rx_base += self.rx
        if tx < self.tx:
            self.tx_base += self.tx
        self.rx, self.tx = rx, tx

    @property
    def rx_total(self) -> int:
        return self.rx_base + self.rx

    @property
    def tx_total(self) -> int:
        return self.tx_base + self.tx


@dataclass(slots=True)
class _Tracked(Counters):
    """One peer as tracked. Its counters are its own fields (one object per peer, not two: a
    big hub keeps tens of thousands of these)."""

    state: link.LinkState = field(default_factory=link.LinkState)
    record: PeerRecord | None = None  # the last cycle's (the fast path compares the next dump with it)
    seen: PeerRecord | None = None  # a newer one read between cycles (the nflog trigger), for the views
    reresolves: int = 0
    endpoint_changes: int = 0
    roams: int = 0
    checks: tuple[CheckResult, ...] = ()  # the last run of this peer's service checks
    settings: TrackSettings | None = None  # what the last sample was built with (the fast path's check)
    merged: TrackSettings | None = None  # its effective settings under the current config (Tracker.settings)
    # Its probe and handshake targets, from the last sample's allowed IPs and ping_target (kept
    # here rather than in a cache keyed by allowed IPs: on a hub each peer's are its own).
    target: str | None = None
    poke: str | None = None
    stamp: int = 0  # the last dump that listed this peer
    due: float = math.inf  # when the fast lane steps it next (link.tick_due)
    timeless: link.LinkState | None = None  # the state link.timeless last held for
    # The last view handed to the outputs, and what it was made of: while the record, the state
    # and the checks are the same objects, the same view goes out again (outputs cache by it).
    view: PeerView | None = None
    view_record: PeerRecord | None = None
    view_state: link.LinkState | None = None


def _count_peers(count: int) -> str:
    return f"{count} peer" if count == 1 else f"{count} peers"


def probe_target(record: PeerRecord, configured: str | None) -> str | None:
    """The configured target, else the first single-host allowed IP; never a network address."""
    if configured:
        return configured
    for cidr in record.allowed_ips:
        host = single_host_address(cidr)
        if host is not None:
            return host
    return None


def handshake_target(record: PeerRecord, probe: str | None) -> str | None:
    """Any address routed into the peer's tunnel: a packet to it makes WireGuard handshake."""
    if probe:
        return probe
    for cidr in record.allowed_ips:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if net.prefixlen == 0:
            continue  # a default route: any address would do, but choose none rather than guess
        return str(net.network_address + 1) if net.num_addresses > 1 else str(net.network_address)
    return None


def _same_view(a: link.LinkState, b: link.LinkState) -> bool:
    """Whether two states show the same in a PeerView (a probe's time, say, is not shown)."""
    return (a.status is b.status and a.since == b.since and a.rtt_ms == b.rtt_ms and a.loss == b.loss
            and a.diagnosis == b.diagnosis and a.target is b.target and a.quiet_cycles == b.quiet_cycles
            and a.next_resolve_at == b.next_resolve_at and a.backoff_cycles == b.backoff_cycles)


class Tracker:
    """All peers' link state, reconciled by (interface, public key) across dumps and reloads."""

    def __init__(self, config: Config, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self._peers: dict[PeerId, _Tracked] = {}
        self._confs: dict[str, Mapping[str, PeerConf]] = {}
        self._interfaces: tuple[InterfaceRecord, ...] = ()  # without their peers (those are in _peers)
        self._present: set[str] = set()  # interfaces seen in the last good dump
        self._events: list[Event] = []
        self._new: list[PeerId] = []  # added by the dump being observed, not yet announced
        self._wall_offset = 0.0  # epoch minus monotonic, from the last dump
        # Counters of peers that went away, for when they come back (an interface restart).
        self._carried: dict[PeerId, tuple[Counters, float, Labels]] = {}
        # Bytes of peers that went away, per interface (labels None) and friendly_json group,
        # so that the totals never go down (a peer that comes back takes its share out again).
        self._departed: dict[tuple[str, Labels | None], list[int]] = {}
        # The fast lane's schedule: (when a Tick asks for a probe, peer), a heap; an entry whose
        # time is no longer the peer's (its state moved on) is skipped when it comes up.
        self._due: list[tuple[float, PeerId]] = []
        # Told of every time the fast lane must step a peer (the daemon wakes its fast lane when
        # that is sooner than it planned to): a callback, so that the tracker stays free of I/O.
        self.on_due: Callable[[float], None] = lambda when: None
        self.changes = 0  # state changes and roams decided so far: the daemon publishes when it moves
        self.handshakes = 0  # new handshakes the cycles found (the nflog trigger's silence check)
        self.added = 0  # peers that became tracked so far (the daemon freezes the GC's view after many)
        self._stamp = 0  # dumps observed (each tracked peer carries the last that listed it)
        # The cost follows the change: a cycle looks at the peers whose dump line changed and at
        # those in _clocked, whose machine time alone may move (not link.timeless); a snapshot
        # makes views again only for the peers in _fresh (stepped since the last snapshot) and
        # _aged (a handshake age to show, which time alone moves).
        self._clocked: set[PeerId] = set()
        self._fresh: dict[PeerId, None] = {}  # a dict: in the order they were stepped (dump order)
        self._aged: set[PeerId] = set()
        self._shown: dict[str, dict[str, PeerView]] = {}  # per interface, each peer's current view
        self._shown_interfaces: dict[str, InterfaceView] = {}  # the last snapshot's, reused when unchanged
        self._last_epoch = (math.nan, math.nan, 0.0)  # see _epoch
        self.host = config.host or socket.gethostname()

    def set_config(self, config: Config) -> None:
        """Apply a reloaded config; every peer keeps its state."""
        self.config = config
        for tracked in self._peers.values():
            tracked.merged = None
        self.host = config.host or socket.gethostname()
        self._forget_views()

    def _forget_views(self) -> None:
        """Settings or wg configs changed: names, hostnames and schedules in the views may too."""
        for tracked in self._peers.values():
            tracked.view = tracked.view_record = tracked.view_state = None
        self._fresh.update(dict.fromkeys(self._peers))
        self._clocked.update(self._peers)  # their samples may differ too (a hostname, a setting)
        self._shown_interfaces.clear()

    def icmp_target(self, pid: PeerId) -> str | None:
        """Where to ping this peer: its probe target, unless ``icmp = no`` or it has none (the
        machine's probe target is then its first service check)."""
        tracked = self._peers.get(pid)
        if tracked is None or not self.settings(pid, tracked).icmp:
            return None
        return tracked.target

    def settings(self, pid: PeerId, tracked: _Tracked | None = None) -> TrackSettings:
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

    def known_interfaces(self) -> set[str]:
        return set(self._confs)

    def set_interface_conf(self, ifname: str, peers: Mapping[str, PeerConf]) -> None:
        self._confs[ifname] = peers
        self._forget_views()

    # ---- events ----

    def drain_events(self) -> tuple[Event, ...]:
        """The events since the last call (the daemon puts them into the next snapshot)."""
        events, self._events = tuple(self._events), []
        return events

    def tracker_event(self, kind: str, wall: float, message: str) -> None:
        self._events.append(Event(kind, wall, message, details={"version": __version__}))

    def _friendly(self, pid: PeerId) -> str | None:
        conf = self._confs.get(pid[0], {}).get(pid[1])
        return conf.friendly_name if conf else None

    def _peer_event(self, pid: PeerId, kind: str, now: float, message: str, *, old: str | None = None,
                    new: str | None = None, details: dict[str, object] | None = None,
                    alike: dict[tuple[object, ...], dict[str, object]] | None = None) -> None:
        """One event of a peer. With ``alike``, a batch's events share their evidence where it
        is the same (events are never changed once made; see ``Event``)."""
        tracked = self._peers.get(pid)
        state = tracked.state if tracked else None
        evidence: dict[str, object] = NOTHING
        if state is not None:
            age = int(max(0.0, now + self._wall_offset - state.latest_handshake)) if state.latest_handshake else None
            evidence = {"handshake_age_s": age,
                        "probe_rtt_ms": state.rtt_ms, "probe_loss": state.loss,
                        "probe_failures": state.probe_failures}
            if alike is not None:
                evidence = alike.setdefault((age, state.rtt_ms, state.loss, state.probe_failures), evidence)
        self._events.append(Event(kind, now + self._wall_offset, f"{self.name_of(pid)}: {message}", pid[0], pid[1],
                                  self._friendly(pid), old, new, evidence, dict(details) if details else NOTHING))

    def name_of(self, pid: PeerId) -> str:
        conf = self._confs.get(pid[0], {}).get(pid[1])
        who = conf.friendly_name if conf and conf.friendly_name else short_key(pid[1])
        return f"{pid[0]}/{who}"

    def _endpoint_host(self, pid: PeerId, conf: PeerConf | None) -> str | None:
        """The hostname behind the endpoint, for operators: the setting, else the wg config's."""
        endpoint = self.settings(pid).endpoint
        if endpoint:
            host = split_endpoint(endpoint)[0]
            return None if is_ip_literal(host) else host
        return conf.endpoint_host if conf else None

    def reresolve_source(self, pid: PeerId) -> tuple[str, int] | None:
        """(hostname, port) when this peer is eligible for re-resolution."""
        settings = self.settings(pid)
        if not settings.reresolve:
            return None
        if settings.endpoint:
            return split_endpoint(settings.endpoint)
        conf = self._confs.get(pid[0], {}).get(pid[1])
        if conf and conf.endpoint_host and conf.endpoint_port:
            return conf.endpoint_host, conf.endpoint_port
        return None

    def observe_dump(self, dump: Dump | DumpChange, now: float, wall: float) -> list[tuple[PeerId, link.Effect]]:
        """Step every peer that needs it with its sample; return the actions to carry out."""
        todo: list[tuple[PeerId, link.Effect]] = []
        for part in self.observe_in_parts(dump, now, wall):
            todo.extend(part)
        return todo

    def observe_in_parts(self, dump: Dump | DumpChange, now: float, wall: float,
                         part_size: int = OBSERVE_PART) -> Iterator[list[tuple[PeerId, link.Effect]]]:
        """``observe_dump`` in parts of ``part_size`` peers, each part's actions as it is done:
        the daemon gives the event loop a turn between parts, so a 50,000-peer hub never holds
        it for long. Each peer is stepped whole within one part.

        A whole ``Dump`` lists every peer (one not listed is gone); a ``DumpChange`` lists the
        changed ones and the gone ones, and every other peer's line is the one it had."""
        self._stamp += 1
        stamp = self._stamp
        self._wall_offset = wall - now
        whole = isinstance(dump, Dump)
        interfaces = tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark, ())
                           for i in dump.interfaces) if whole else dump.interfaces
        present = {iface.name for iface in interfaces}
        # An interface that appears is one event, with the count of peers it came with (at start
        # too): a peer_added each would be a flood on a big hub's every restart, and 50,000 events
        # held until published are memory the process keeps. Peers come and go one by one only
        # on an interface already tracked.
        came = sorted(present - self._present)
        if came:
            listed_on = Counter(record.interface for record in
                                (dump.changed if isinstance(dump, DumpChange) else
                                 (r for iface in dump.interfaces if iface.name in came for r in iface.peers)))
            for ifname in came:
                count = listed_on[ifname]
                self._events.append(Event("interface_up", wall, f"interface {ifname} appeared with "
                                          f"{_count_peers(count)}", ifname, details={"peers": count}))
        announce_at = len(self._events)
        gone_with: Counter[str] = Counter()  # peers that went away with their interface
        peers = self._peers
        todo: list[tuple[PeerId, link.Effect]] = []
        visited = 0
        if isinstance(dump, Dump):
            listed: Iterator[PeerRecord] = (record for iface in dump.interfaces for record in iface.peers)
        else:
            listed = iter(dump.changed)
            self._remove(dump.gone, now, present, gone_with)
        for record in listed:
            pid = (record.interface, record.public_key)
            tracked = peers.get(pid)
            if tracked is None:
                tracked = self._added(pid, now)
            if tracked.stamp == stamp:
                continue  # listed twice (a dump the kernel would not print): the first counts
            tracked.stamp = stamp
            self._visit(pid, tracked, record, now, wall, todo)
            visited += 1
            if visited % part_size == 0:
                yield todo
                todo = []
        if whole:
            if visited != len(peers):  # some went away
                self._remove([pid for pid, tracked in peers.items() if tracked.stamp != stamp], now, present, gone_with)
        else:
            clocked = len(self._clocked)
            for pid in list(self._clocked):  # peers whose machine the clock alone may move
                tracked = peers.get(pid)
                if tracked is None or tracked.record is None:
                    self._clocked.discard(pid)
                    continue
                if tracked.stamp == stamp:
                    continue  # stepped with its changed line just now; it stays clocked for the next cycle
                tracked.stamp = stamp
                self._visit(pid, tracked, tracked.record, now, wall, todo)
                visited += 1
                if visited % part_size == 0:
                    yield todo
                    todo = []
            if clocked >= 1024 and len(self._clocked) * 8 < clocked:
                self._clocked = set(self._clocked)  # a set never shrinks: after a big hub's first dump, 0.5 MB
        yield todo
        yield from self._announce(announce_at, now, part_size)
        for ifname in sorted(self._present - present):
            count = gone_with[ifname]
            self._events.append(Event("interface_down", wall, f"interface {ifname} is gone with "
                                      f"{_count_peers(count)}", ifname, details={"peers": count}))
            self._shown.pop(ifname, None)
            self._shown_interfaces.pop(ifname, None)
        self._present = present
        for ifname in set(self._confs) - present:
            del self._confs[ifname]
        self._interfaces = interfaces

    def _visit(self, pid: PeerId, tracked: _Tracked, record: PeerRecord, now: float, wall: float,
               todo: list[tuple[PeerId, link.Effect]]) -> None:
        settings = self.settings(pid, tracked)
        # The fast path: the same dump line (the parser hands out the same record) under the
        # same settings, and a machine that time alone does not move: nothing to do.
        if record is tracked.record and settings is tracked.settings:
            state = tracked.state
            if tracked.timeless is state:
                self._clocked.discard(pid)  # no clock in its rules any more: left until something changes
                return
            if link.unchanged(state, wall, now, settings):
                if link.timeless(state, wall, now, settings):
                    tracked.timeless = state
                    self._clocked.discard(pid)
                return
        self._sample(pid, tracked, record, settings, now, wall, todo)

    def _remove(self, gone: Iterable[PeerId], now: float, present: Container[str],
                gone_with: Counter[str]) -> None:
        """Forget peers no longer listed; a peer_removed event each, unless its interface went
        too (counted in ``gone_with``, for the interface_down event)."""
        for pid in sorted(gone):
            tracked = self._peers.get(pid)
            if tracked is None:
                continue
            log.info("%s: gone from WireGuard, no longer tracked", self.name_of(pid))
            if pid[0] in present:
                self._peer_event(pid, "peer_removed", now, "gone from WireGuard, no longer tracked")
            else:
                gone_with[pid[0]] += 1
            del self._peers[pid]
            self._carry(pid, tracked, now)
            self._clocked.discard(pid)
            self._aged.discard(pid)
            self._fresh[pid] = None  # the next snapshot drops its view

    def _added(self, pid: PeerId, now: float) -> _Tracked:
        tracked = self._peers[pid] = _Tracked()
        self.added += 1
        carried = self._carried.pop(pid, None)
        if carried is not None and carried[1] >= now - CARRIED_S:
            counters, _when, labels = carried
            tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx = \
                counters.rx_base, counters.tx_base, counters.rx, counters.tx
            rx, tx = counters.rx_total, counters.tx_total
            for key in ((pid[0], None), (pid[0], labels)):
                gone = self._departed.get(key)
                if gone is not None:
                    gone[0] -= rx
                    gone[1] -= tx
        self._new.append(pid)  # its peer_added event: see _announce
        return tracked

    def _announce(self, at: int, now: float, part_size: int) -> Iterator[list[tuple[PeerId, link.Effect]]]:
        """The peer_added events of the peers added by this dump to interfaces tracked before
        it (see observe_in_parts), put where the dump's events begin (before any of theirs);
        every new peer is logged. Made after the stepping, together: built in between the peers'
        own lasting objects they would leave the process's memory in holes. They share their
        evidence where it is alike."""
        new, self._new = self._new, []
        if not new:
            return
        tail, self._events = self._events[at:], self._events[:at]
        alike: dict[tuple[object, ...], dict[str, object]] = {}
        for made, pid in enumerate(new, 1):
            if pid in self._peers:
                if log.isEnabledFor(logging.INFO):
                    log.info("%s: now tracked", self.name_of(pid))
                if pid[0] in self._present:  # not yet this dump's: the interfaces tracked before it
                    self._peer_event(pid, "peer_added", now, "now tracked", alike=alike)
            if made % part_size == 0:
                yield []  # 50,000 of them take some 200 ms: the loop gets its turns
        self._events += tail

    def _sample(self, pid: PeerId, tracked: _Tracked, record: PeerRecord, settings: TrackSettings, now: float,
                wall: float, todo: list[tuple[PeerId, link.Effect]]) -> None:
        """The full path: one Sample from the record and the settings, one step."""
        if record.latest_handshake > tracked.state.latest_handshake and tracked.state.status is not None:
            self.handshakes += 1
        before, sampled = tracked.record, tracked.settings
        if before is None or sampled is None or before.allowed_ips != record.allowed_ips \
                or sampled.ping_target != settings.ping_target:
            tracked.target = probe_target(record, settings.ping_target)
            tracked.poke = handshake_target(record, tracked.target)
        tracked.record = record
        tracked.seen = None
        tracked.settings = settings
        if record.latest_handshake:
            self._aged.add(pid)
        else:
            self._aged.discard(pid)
        tracked.update(record.rx_bytes, record.tx_bytes)
        target, poke = tracked.target, tracked.poke
        if not settings.icmp:
            target = None
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
            handshake_target=poke, rand=self.rng.random() if source else 0.0,
        )
        todo.extend((pid, a) for a in self._step(pid, tracked, sample, now))

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
                    self._aged.add(pid)
                tracked.update(record.rx_bytes, record.tx_bytes)
                self._step(pid, tracked, link.Seen(record.latest_handshake, record.endpoint, wall), now)
        self._interfaces = tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark, ())
                                 if i.name == iface.name else i for i in self._interfaces)
        return new

    def listen_ports(self) -> dict[int, str]:
        """listen port -> interface, from the last dump (where a logged handshake belongs)."""
        return {i.listen_port: i.name for i in self._interfaces if i.listen_port}

    def observe(self, pid: PeerId, obs: link.Observation, now: float) -> list[link.Effect]:
        """Feed a probe, resolve or set-endpoint result; return the follow-up actions."""
        tracked = self._peers.get(pid)
        if tracked is None:
            return []  # the peer vanished while the action ran
        return self._step(pid, tracked, obs, now)

    def _step(self, pid: PeerId, tracked: _Tracked, obs: link.Observation, now: float) -> list[link.Effect]:
        settings = self.settings(pid)
        tracked.state, actions = link.step(tracked.state, obs, now, settings)
        self._fresh[pid] = None
        self._clocked.add(pid)  # the next cycle looks again (and drops it if it is timeless)
        due = link.tick_due(tracked.state, settings)
        if due != tracked.due:
            tracked.due = due
            if due < math.inf:
                heapq.heappush(self._due, (due, pid))
                self.on_due(due)
        for action in actions:
            if isinstance(action, link.Changed):
                self.changes += 1
                old = action.old.value if action.old else "new"
                log.info("%s: %s -> %s (%s)", self.name_of(pid), old, action.new.value, action.reason)
                if action.event is not None:
                    what = "down" if action.event == "peer_down" else "up again"
                    self._peer_event(pid, action.event, now, f"{what} ({action.reason})", old=old,
                                     new=action.new.value, details={"reason": action.reason})
            elif isinstance(action, link.Resolve):
                tracked.reresolves += 1
            elif isinstance(action, link.EndpointChanged):
                tracked.endpoint_changes += 1
                log.info("%s: endpoint %s -> %s", self.name_of(pid), action.old or "(none)", action.new)
                self._peer_event(pid, "endpoint_changed", now, f"endpoint {action.old or '(none)'} -> {action.new}",
                                 details={"old_endpoint": action.old, "new_endpoint": action.new})
            elif isinstance(action, link.Roamed):
                self.changes += 1
                tracked.roams += 1
                log.info("%s: roamed %s -> %s", self.name_of(pid), action.old, action.new)
                self._peer_event(pid, "peer_roamed", now, f"roamed {action.old} -> {action.new}",
                                 details={"old_endpoint": action.old, "new_endpoint": action.new})
            elif isinstance(action, link.Diagnosed):
                what = ("the host answers outside the tunnel, the tunnel does not: keys, a firewall on the UDP "
                        "port or a stale endpoint" if action.cause == "tunnel_only" else
                        "the host does not answer outside the tunnel either")
                log.warning("%s: likely cause %s: %s (%s)", self.name_of(pid), action.cause, what, action.address)
                self._peer_event(pid, "peer_diagnosed", now, f"likely cause {action.cause}: {what}",
                                 details={"cause": action.cause, "address": action.address})
            elif isinstance(action, link.TargetVerdict):
                if action.verdict is link.Target.SILENT:
                    log.warning("%s: probe target %s is silent: %s; judging the link by handshakes until it "
                                "answers", self.name_of(pid), action.target, action.reason)
                else:
                    log.info("%s: probe target %s answers: %s", self.name_of(pid), action.target, action.reason)
            elif isinstance(action, link.ResolveFailed):
                log.warning("%s: re-resolution failed: %s", self.name_of(pid), action.reason)
                self._peer_event(pid, "reresolve_failed", now, f"re-resolution failed: {action.reason}",
                                 details={"reason": action.reason})
        return [a for a in actions if isinstance(a, link.EFFECTS)]

    def tick(self, now: float, wall: float, busy: Container[PeerId]) -> list[tuple[PeerId, link.Effect]]:
        """The fast lane: step the peers whose probe time has come (down peers, and peers with
        probe_interval) with the time; their probes. A ``busy`` peer has a probe in flight:
        its result reschedules it."""
        todo: list[tuple[PeerId, link.Effect]] = []
        due = self._due
        ready: list[tuple[PeerId, _Tracked]] = []
        while due and due[0][0] <= now:  # taken out first: a step may schedule for now again
            when, pid = heapq.heappop(due)
            tracked = self._peers.get(pid)
            if tracked is not None and tracked.due == when:  # else gone, or its schedule moved on
                tracked.due = math.inf
                ready.append((pid, tracked))
        for pid, tracked in ready:
            if pid not in busy:
                todo.extend((pid, a) for a in self._step(pid, tracked, link.Tick(wall), now))
        if len(due) > 4 * len(self._peers) + 1024:  # many stale entries: start the heap afresh
            self._due = [(t.due, pid) for pid, t in self._peers.items() if t.due < math.inf]
            heapq.heapify(self._due)
        return todo

    def next_due(self) -> float:
        """When the fast lane has a peer to step next (inf: none)."""
        due, peers = self._due, self._peers
        while due:
            when, pid = due[0]
            tracked = peers.get(pid)
            if tracked is not None and tracked.due == when:
                return when
            heapq.heappop(due)  # stale: gone, or its schedule moved on
        return math.inf

    def is_up(self, pid: PeerId) -> bool:
        """Up: its probes are awaited within the cycle."""
        tracked = self._peers.get(pid)
        return tracked is not None and tracked.state.status is link.Status.UP

    def is_urgent(self, pid: PeerId, now: float) -> bool:
        """Its probes go first when probes wait (``link.urgent``)."""
        tracked = self._peers.get(pid)
        return tracked is not None and link.urgent(tracked.state, now)

    def record_checks(self, pid: PeerId, results: tuple[CheckResult, ...]) -> None:
        tracked = self._peers.get(pid)
        if tracked is not None:
            before = {r.check: r.ok for r in tracked.checks}  # one log line per change, not per run
            for result in results:
                if not result.ok and before.get(result.check, True):
                    log.info("%s: check %s failed: %s", self.name_of(pid), result.check, result.error)
                elif result.ok and before.get(result.check) is False:
                    log.info("%s: check %s answers again", self.name_of(pid), result.check)
            tracked.checks = results
            self._fresh[pid] = None

    def _labels(self, pid: PeerId) -> Labels:
        conf = self._confs.get(pid[0], {}).get(pid[1])
        return tuple(sorted(conf.friendly_json.items())) if conf else ()

    def _carry(self, pid: PeerId, tracked: _Tracked, now: float) -> None:
        labels = self._labels(pid)
        rx, tx = tracked.rx_total, tracked.tx_total
        for key in ((pid[0], None), *(((pid[0], labels),) if labels else ())):
            gone = self._departed.setdefault(key, [0, 0])
            gone[0] += rx
            gone[1] += tx
        self._carried[pid] = (Counters(tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx), now, labels)
        while self._carried:
            oldest = next(iter(self._carried))
            if len(self._carried) <= CARRIED_MAX and self._carried[oldest][1] >= now - CARRIED_S:
                break
            del self._carried[oldest]

    def forget(self) -> None:
        """wg could not be read: drop the picture of interfaces, keep the peers' memory."""
        self._interfaces = ()

    def snapshot(self, now: float, facts: CycleFacts) -> Snapshot:
        """The immutable picture for the outputs (``now`` is monotonic, for state ages)."""
        parts = self.snapshot_in_parts(now, facts)
        while True:
            try:
                next(parts)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def snapshot_in_parts(self, now: float, facts: CycleFacts,
                          part_size: int = SNAPSHOT_PART) -> Generator[None, None, Snapshot]:
        """``snapshot`` in parts: yields after every ``part_size`` peers looked at (the daemon
        gives the loop a turn there) and returns the snapshot. Only peers stepped since the last
        snapshot, or with a handshake age to show, are looked at; an interface none of whose
        views changed is the very same InterfaceView as before (outputs cache by it)."""
        interfaces: list[InterfaceView] = []
        if facts.wg_error is None:
            wall = facts.time_ns // 1_000_000_000
            look, self._fresh = self._fresh, {}
            look.update(dict.fromkeys(self._aged))
            by_interface: dict[str, list[PeerId]] = {}
            for pid in look:
                by_interface.setdefault(pid[0], []).append(pid)
            looked = 0
            for iface in self._interfaces:
                shown = self._shown.setdefault(iface.name, {})
                confs = self._confs.get(iface.name, {})
                changed = False
                for pid in by_interface.get(iface.name, ()):
                    tracked = self._peers.get(pid)
                    if tracked is None:
                        changed = shown.pop(pid[1], None) is not None or changed
                    else:
                        view = self._view(pid, tracked, confs, iface.public_key, wall)
                        if shown.get(pid[1]) is not view:
                            shown[pid[1]] = view
                            changed = True
                    looked += 1
                    if looked % part_size == 0:
                        yield
                before = self._shown_interfaces.get(iface.name)
                if before is not None and not changed and before.listen_port == iface.listen_port \
                        and before.public_key == iface.public_key:
                    interfaces.append(before)
                    continue
                views = tuple(shown.values())
                made = InterfaceView(iface.name, iface.public_key, iface.listen_port, views,
                                     self._totals(iface.name, views))
                self._shown_interfaces[iface.name] = made
                interfaces.append(made)
        return Snapshot(time_ns=facts.time_ns, cycle=facts.cycle, wg_ok=facts.wg_error is None,
                        wg_error=facts.wg_error, interfaces=tuple(interfaces), cycle_duration_s=facts.cycle_duration_s,
                        started_ns=facts.started_ns, loop_lag_ms=facts.loop_lag_ms,
                        last_success_ns=facts.last_success_ns, errors=facts.errors, events=self.drain_events(),
                        cycle_time_s=self.config.cycle_time_s, stopped=facts.stopped, host=self.host)

    def _totals(self, ifname: str, views: Sequence[PeerView]) -> tuple[Totals, ...]:
        """Peers by state and bytes, for the interface and each friendly_json group on it,
        with the bytes of the peers that went away."""
        def departed(labels: Labels | None) -> tuple[int, int]:
            gone = self._departed.get((ifname, labels))
            return (gone[0], gone[1]) if gone else (0, 0)

        return tally(views, departed)

    def _next_reresolve_s(self, ifname: str, key: str, state: link.LinkState) -> float | None:
        cycles = link.cycles_to_next_resolve(state, self.settings((ifname, key)))
        return None if cycles is None else cycles * self.config.cycle_time_s

    def _epoch(self, since: float) -> float:
        """A state's monotonic ``since`` as epoch seconds; the same float object for the same
        time (the peers a dump moved share it: a float each is 24 bytes a peer on a big hub)."""
        last = self._last_epoch
        if last[0] == since and last[1] == self._wall_offset:
            return last[2]
        value = round(since + self._wall_offset, 3)
        self._last_epoch = (since, self._wall_offset, value)
        return value

    def _view(self, pid: PeerId, tracked: _Tracked, confs: Mapping[str, PeerConf], interface_key: str,
              wall: int) -> PeerView:
        """The peer's view: the very same one while nothing it shows changed (a down peer's
        probe times are no part of it)."""
        record = tracked.seen or tracked.record
        assert record is not None, "a tracked peer has been sampled"
        state = tracked.state
        hs = record.latest_handshake
        age = max(0, wall - hs) if hs else None
        view, made_of = tracked.view, tracked.view_state
        if view is not None and made_of is not None and tracked.view_record is record \
                and view.checks is tracked.checks and view.handshake_age_s == age \
                and (made_of is state or _same_view(made_of, state)) \
                and (view.reresolves, view.endpoint_changes, view.roams, view.rx_bytes, view.tx_bytes) == \
                (tracked.reresolves, tracked.endpoint_changes, tracked.roams, tracked.rx_total, tracked.tx_total):
            tracked.view_state = state
            return view
        status = state.status or link.Status.IDLE
        conf = confs.get(pid[1])
        view = tracked.view = PeerView(
            interface=pid[0],
            public_key=pid[1],
            friendly_name=conf.friendly_name if conf else None,
            endpoint=record.endpoint,
            allowed_ips=record.allowed_ips,
            latest_handshake=record.latest_handshake,
            handshake_age_s=age,
            rx_bytes=tracked.rx_total,
            tx_bytes=tracked.tx_total,
            keepalive_s=record.keepalive_s,
            status=status,
            since=self._epoch(state.since),
            rtt_ms=state.rtt_ms,
            loss=state.loss,
            reresolves=tracked.reresolves,
            endpoint_changes=tracked.endpoint_changes,
            roams=tracked.roams,
            diagnosis=state.diagnosis,
            checks=tracked.checks,
            friendly_labels=tuple(sorted(conf.friendly_json.items())) if conf else (),
            next_reresolve_s=self._next_reresolve_s(pid[0], pid[1], state),
            probe_silent=state.probe_silent,
            interface_key=interface_key,
            endpoint_host=self._endpoint_host(pid, conf),
            exported=self.settings(pid).per_peer_metrics,
        )
        tracked.view_record, tracked.view_state = record, state
        return view
