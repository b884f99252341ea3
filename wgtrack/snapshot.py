"""The immutable picture of one cycle that every output receives."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wgtrack.link import Status

if TYPE_CHECKING:
    from wgtrack.checks import CheckResult
    from wgtrack.events import Event
    from wgtrack.history.reading import Availability
    from wgtrack.quality import QualityView


@dataclass(frozen=True, slots=True)
class PeerView:
    """One peer as outputs see it: dump facts, config facts and the link verdict."""

    interface: str
    public_key: str
    friendly_name: str | None
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # epoch s, 0 = never
    handshake_age_s: int | None  # None = never
    rx_bytes: int
    tx_bytes: int
    keepalive_s: int
    status: Status
    since: float  # epoch seconds when it entered this status (a view stays valid while nothing changes)
    rtt_ms: float | None
    loss: float | None
    reresolves: int = 0  # re-resolutions started while this peer was tracked
    endpoint_changes: int = 0  # endpoints wgtrack applied
    roams: int = 0  # endpoint changes wgtrack did not make (peer_roamed events)
    diagnosis: str | None = None  # while down, with underlay_probe: tunnel_only / host_unreachable
    checks: tuple[CheckResult, ...] = ()  # the last results of the peer's service checks
    friendly_labels: tuple[tuple[str, str], ...] = ()  # from "# friendly_json = {...}"
    next_reresolve_s: float | None = None  # when the next re-resolution is due, if one is planned
    probe_silent: bool = False  # the probe target does not answer; the link is judged by handshakes
    interface_key: str = ""  # the local interface's public key: with public_key, the link's two ends
    endpoint_host: str | None = None  # the hostname the endpoint is re-resolved from, if any
    exported: bool = True  # per_peer_metrics: series of its own in Prometheus and the Influx outputs
    quality: QualityView | None = None  # its probes' counters, histogram and window (None: never probed)
    degraded: str | None = None  # while up:degraded, why: loss, latency or mtu
    path_mtu: int | None = None  # the largest inner packet the last path-MTU search saw pass (None: not measured)
    mtu_note: str | None = None  # why it has no path-MTU verdict (a silent target, no ICMP target, ...)
    target: str = "unproven"  # its probe target: answers (probes decide), silent, or unproven (link.Target)
    counter_base: tuple[int, int] = (0, 0)  # what counter resets added to rx_bytes, tx_bytes (the store keeps it)

    @property
    def is_up(self) -> bool:
        return self.status.is_up

    def since_s(self, at: float) -> float:
        """Seconds in this status as of ``at`` (epoch seconds: the snapshot's time)."""
        return max(0.0, at - self.since)


Labels = tuple[tuple[str, str], ...]  # a friendly_json group


@dataclass(frozen=True, slots=True)
class Totals:
    """Peers by state and bytes of one interface, or of one friendly_json group on it (``labels``
    empty: the whole interface). Byte totals never go down while the group's peers stay in it:
    a peer that goes away leaves its bytes in the total."""

    labels: Labels
    states: tuple[tuple[str, int], ...]  # (status value, peers), every status
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True, slots=True)
class InterfaceView:
    """One interface and its peers (every peer, exported or not), with its totals."""

    name: str
    public_key: str
    listen_port: int | None
    peers: tuple[PeerView, ...]
    totals: tuple[Totals, ...] = ()  # the interface first, then each friendly_json group

    def all_totals(self) -> tuple[Totals, ...]:
        """The totals; for a view made without them (tests), from its peers alone."""
        return self.totals or tally(self.peers, lambda labels: (0, 0))


def tally(views: Sequence[PeerView], departed: Callable[[Labels | None], tuple[int, int]]) -> tuple[Totals, ...]:
    """Peers by state and bytes of one interface's views, for the interface (labels empty,
    first) and each friendly_json group; ``departed`` adds the bytes of peers gone from it.
    Hot at 50,000 peers: counted by the status's value (a str: hashed in C, where an enum
    member's hash is a Python call)."""
    whole: dict[str, int] = dict.fromkeys(STATE_VALUES, 0)
    rx, tx = departed(None)
    groups: dict[Labels, tuple[dict[str, int], list[int]]] = {}
    for view in views:
        value = view.status._value_
        whole[value] += 1
        rx += view.rx_bytes
        tx += view.tx_bytes
        labels = view.friendly_labels
        if labels:
            group = groups.get(labels)
            if group is None:
                group = groups[labels] = (dict.fromkeys(STATE_VALUES, 0), list(departed(labels)))
            group[0][value] += 1
            group[1][0] += view.rx_bytes
            group[1][1] += view.tx_bytes
    named = [Totals((), tuple(whole.items()), rx, tx)]
    named += [Totals(labels, tuple(counts.items()), total[0], total[1])
              for labels, (counts, total) in sorted(groups.items())]
    return tuple(named)


STATE_VALUES: tuple[str, ...] = tuple(status.value for status in Status)


@dataclass(frozen=True, slots=True)
class CycleFacts:
    """What the daemon knows of one cycle besides the peers: the heartbeat's content."""

    time_ns: int
    cycle: int
    wg_error: str | None
    cycle_duration_s: float
    started_ns: int
    loop_lag_ms: float = 0.0  # worst event-loop wake-up delay seen during the cycle
    last_success_ns: int = 0  # when wg was last read successfully (0 = never)
    errors: tuple[tuple[str, int], ...] = ()  # cumulative collection errors by kind
    stopped: bool = False  # the last snapshot of a clean stop


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What wgtrack knows at the end of one cycle.

    When ``wg_ok`` is false the interfaces are empty: stale data is never handed out as
    current; the tracker line still says the tracker is alive and why it has nothing.
    """

    time_ns: int
    cycle: int
    wg_ok: bool
    wg_error: str | None
    interfaces: tuple[InterfaceView, ...]
    cycle_duration_s: float
    started_ns: int
    loop_lag_ms: float = 0.0  # worst event-loop wake-up delay seen during the cycle
    last_success_ns: int = 0  # when wg was last read successfully (0 = never)
    errors: tuple[tuple[str, int], ...] = ()  # cumulative collection errors by kind
    events: tuple[Event, ...] = ()  # what changed since the previous snapshot
    cycle_time_s: float = 0.0  # the configured period, so readers can tell a stale picture
    host: str = ""  # this host's name in fleet views ([general] host)
    stopped: bool = False  # the last snapshot of a clean stop
    # (interface, public key) -> availability over 24 h, 7 d, 30 d: the history store's
    # figures (docs/history.md); None without a store
    availability: Mapping[tuple[str, str], Availability] | None = None
    history_path: str | None = None  # the history store's file, for pages that read a peer's past
