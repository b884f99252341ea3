"""One tracked peer's record, its probe and handshake targets, and the memory of the byte
counters of peers that went away (exported counters never go down)."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wgtrack import link
from wgtrack.model import PeerRecord, single_host_address, split_endpoint
from wgtrack.quality import Quality, QualityView

if TYPE_CHECKING:
    from wgtrack.checks import CheckResult
    from wgtrack.config import TrackSettings
    from wgtrack.snapshot import PeerView
    from wgtrack.wgconf import PeerConf

PeerId = tuple[str, str]  # (interface, public key)
Labels = tuple[tuple[str, str], ...]  # a friendly_json group

CARRIED_S = 86_400.0  # how long a removed peer's counter totals are remembered
CARRIED_MAX = 100_000  # and how many at most (the oldest go first)


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
class TrackedPeer(Counters):
    """One peer as tracked. Its counters are its own fields (one object per peer, not two: a
    big hub keeps tens of thousands of these)."""

    state: link.LinkState = field(default_factory=link.LinkState)
    record: PeerRecord | None = None  # the last cycle's (the fast path compares the next dump with it)
    seen: PeerRecord | None = None  # a newer one read between cycles (the nflog trigger), for the views
    reresolves: int = 0
    endpoint_changes: int = 0
    roams: int = 0
    checks: tuple[CheckResult, ...] = ()  # the last run of this peer's service checks
    quality: Quality | None = None  # its echoes' record, from its first probe on
    told: QualityView | None = None  # the figures the link machine was last told (link.Measured)
    path_mtu: int | None = None  # the largest inner packet that passes, when the last search found it short
    tunnel_mtu: int | None = None  # the interface's MTU, the size that should pass
    mtu_note: str | None = None  # why the last search gave no verdict
    settings: TrackSettings | None = None  # what the last sample was built with (the fast path's check)
    merged: TrackSettings | None = None  # its effective settings under the current config (Tracker.settings)
    # Its probe and handshake targets, from the last sample's allowed IPs and ping_target (kept
    # here rather than in a cache keyed by allowed IPs: on a hub each peer's are its own).
    target: str | None = None
    handshake_target: str | None = None
    listed_in: int = 0  # the number of the last dump that listed this peer
    due: float = math.inf  # when the fast lane steps it next (link.tick_due)
    timeless_state: link.LinkState | None = None  # the state for which link.timeless last held
    # The last view handed to the outputs, and the state it was made of: while the record (the
    # view's own), the state and the checks are the same objects, the same view goes out again
    # (outputs cache by it).
    view: PeerView | None = None
    view_state: link.LinkState | None = None
    # On a start, when (monotonic) the peer took up the state the history store remembered,
    # until its first verdict is weighed (resume.Resumption.settle).
    resumed: float | None = None

    def record_echoes(self, wall: float, sent: int, rtts_ms: tuple[float, ...]) -> None:
        if self.quality is None:
            self.quality = Quality()
        self.quality.record(wall, sent, rtts_ms)

    def record_mtu(self, result: link.MtuResult) -> None:
        """A path-MTU search's outcome; one without a verdict keeps the last verdict."""
        if result.path_mtu is not None:
            self.path_mtu, self.tunnel_mtu = result.path_mtu, result.mtu
        self.mtu_note = result.reason or None

    def measured(self, wall: float, force: bool = False) -> link.Measured | None:
        """The quality the link machine has not been told yet (None: no new figures); ``force``:
        tell it again (a path-MTU verdict came)."""
        if not force and (self.quality is None or not self.quality.window_due(wall)):
            return None  # the window's figures are as the machine was last told: only counters moved
        view = self.quality.summary(wall) if self.quality is not None else None
        if view is self.told and not force:
            return None
        self.told = view
        if view is None:
            return link.Measured(path_mtu=self.path_mtu, mtu=self.tunnel_mtu)
        return link.Measured(view.loss, view.window_probes, view.p50_ms, self.path_mtu, self.tunnel_mtu)

    def after(self, actions: list[link.Action]) -> None:
        """What a step's moves mean for the record kept beside the machine: a link that comes
        up is measured afresh."""
        if self.quality is not None and any(isinstance(a, link.Changed) and a.new.is_up and not (a.old and a.old.is_up)
                                             for a in actions):
            self.quality.restart_window()


def reresolve_source(settings: TrackSettings, conf: PeerConf | None) -> tuple[str, int] | None:
    """(hostname, port) when a peer is eligible for re-resolution: wgtrack's own endpoint
    setting first, else the hostname its wg config names."""
    if not settings.reresolve:
        return None
    if settings.endpoint:
        return split_endpoint(settings.endpoint)
    if conf and conf.endpoint_host and conf.endpoint_port:
        return conf.endpoint_host, conf.endpoint_port
    return None


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


class CounterMemory:
    """Counters of peers that went away, for when they come back (an interface restart), and
    their bytes per interface (labels None) and friendly_json group, so that the totals never
    go down (a peer that comes back takes its share out again)."""

    def __init__(self) -> None:
        self._carried: dict[PeerId, tuple[Counters, float, Labels]] = {}
        self._departed: dict[tuple[str, Labels | None], list[int]] = {}

    def carry(self, pid: PeerId, tracked: Counters, labels: Labels, now: float) -> None:
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

    def restore(self, pid: PeerId, tracked: Counters, now: float) -> None:
        """A peer is back: its counters go on from where they were."""
        carried = self._carried.pop(pid, None)
        if carried is None or carried[1] < now - CARRIED_S:
            return
        counters, _when, labels = carried
        tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx = \
            counters.rx_base, counters.tx_base, counters.rx, counters.tx
        rx, tx = counters.rx_total, counters.tx_total
        for key in ((pid[0], None), (pid[0], labels)):
            gone = self._departed.get(key)
            if gone is not None:
                gone[0] -= rx
                gone[1] -= tx

    def departed(self, ifname: str, labels: Labels | None) -> tuple[int, int]:
        """Bytes (rx, tx) of the peers gone from this interface (or group of it)."""
        gone = self._departed.get((ifname, labels))
        return (gone[0], gone[1]) if gone else (0, 0)
