"""The immutable picture of one cycle that every output receives."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from wgtrack.link import Status
from wgtrack.model import PeerRecord

if TYPE_CHECKING:
    from wgtrack.checks import CheckResult
    from wgtrack.events import Event
    from wgtrack.history.availability import Availability
    from wgtrack.quality import QualityView


class _Rare(NamedTuple):
    """The part of a PeerView that most peers of a hub share: counters that stay 0, the
    interface's key, no checks, no path-MTU verdict. Alike parts are one object (``_rare``)."""

    reresolves: int
    endpoint_changes: int
    roams: int
    diagnosis: str | None
    checks: tuple[CheckResult, ...]
    friendly_labels: tuple[tuple[str, str], ...]
    next_reresolve_s: float | None
    probe_silent: bool
    interface_key: str
    endpoint_host: str | None
    exported: bool
    degraded: str | None
    path_mtu: int | None
    mtu_note: str | None
    counter_base: tuple[int, int]


_RARE: dict[_Rare, _Rare] = {}
RARE_KEPT = 4096  # alike parts remembered; past this the table starts again (the views keep theirs)


def _rare(part: _Rare) -> _Rare:
    if len(_RARE) >= RARE_KEPT:
        _RARE.clear()
    try:
        return _RARE.setdefault(part, part)
    except TypeError:  # an unhashable field (a test's list, say): this view keeps its own
        return part


class PeerView:
    """One peer as outputs see it: dump facts, config facts and the link verdict. Immutable.

    Its own fields are those that differ from peer to peer; the rest is a shared ``_Rare``
    and the dump record it was made of (a view is 128 bytes, not the 280 of a 31-field dataclass:
    a big hub keeps one per peer, and a 10,000-peer hub's views were 2.8 MB of its RSS)."""

    __slots__ = (
        "_rare",
        "_record",
        "friendly_name",
        "handshake_age_s",
        "loss",
        "quality",
        "rtt_ms",
        "rx_bytes",
        "since",
        "status",
        "target",
        "tx_bytes",
    )

    friendly_name: str | None
    handshake_age_s: int | None  # None = never
    rx_bytes: int  # the exported totals (the record's, plus what counter resets took away)
    tx_bytes: int
    status: Status
    since: float  # epoch seconds when it entered this status (a view stays valid while nothing changes)
    rtt_ms: float | None
    loss: float | None
    quality: QualityView | None  # its probes' counters, histogram and window (None: never probed)
    target: str  # its probe target: answers (probes decide), silent, or unproven (link.Target)
    _rare: _Rare
    _record: PeerRecord  # the dump's facts: interface, key, endpoint, allowed IPs, handshake, keepalive

    def __init__(self, interface: str, public_key: str, friendly_name: str | None, endpoint: str | None,
                 allowed_ips: tuple[str, ...], latest_handshake: int, handshake_age_s: int | None, rx_bytes: int,
                 tx_bytes: int, keepalive_s: int, status: Status, since: float, rtt_ms: float | None,
                 loss: float | None, *, reresolves: int = 0, endpoint_changes: int = 0, roams: int = 0,
                 diagnosis: str | None = None, checks: tuple[CheckResult, ...] = (),
                 friendly_labels: tuple[tuple[str, str], ...] = (), next_reresolve_s: float | None = None,
                 probe_silent: bool = False, interface_key: str = "", endpoint_host: str | None = None,
                 exported: bool = True, quality: QualityView | None = None, degraded: str | None = None,
                 path_mtu: int | None = None, mtu_note: str | None = None, target: str = "unproven",
                 counter_base: tuple[int, int] = (0, 0), record: PeerRecord | None = None) -> None:
        """``record``: the dump record that interface, public_key, endpoint, allowed_ips,
        latest_handshake and keepalive_s come from; the view keeps it rather than a copy of
        them (the tracker keeps it anyway), and those six arguments are then not read."""
        put = object.__setattr__
        put(self, "_record", record if record is not None else PeerRecord(
            interface, public_key, endpoint, allowed_ips, latest_handshake, rx_bytes, tx_bytes, keepalive_s))
        put(self, "friendly_name", friendly_name)
        put(self, "handshake_age_s", handshake_age_s)
        put(self, "rx_bytes", rx_bytes)
        put(self, "tx_bytes", tx_bytes)
        put(self, "status", status)
        put(self, "since", since)
        put(self, "rtt_ms", rtt_ms)
        put(self, "loss", loss)
        put(self, "quality", quality)
        put(self, "target", target)
        put(self, "_rare", _rare(_Rare(reresolves, endpoint_changes, roams, diagnosis, checks, friendly_labels,
                                       next_reresolve_s, probe_silent, interface_key, endpoint_host, exported,
                                       degraded, path_mtu, mtu_note, counter_base)))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"PeerView is immutable: cannot set {name}")

    def _values(self) -> dict[str, Any]:
        """Every field by name, as the dataclass had them (equality, hash, repr, replace)."""
        return {**{name: getattr(self, name) for name in _OWN}, **self._rare._asdict()}

    def replace(self, **changes: Any) -> PeerView:
        """A copy with ``changes`` (``dataclasses.replace``, which needs a dataclass)."""
        return PeerView(**{**self._values(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PeerView) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(tuple(self._values().values()))

    def __repr__(self) -> str:
        return f"PeerView({', '.join(f'{k}={v!r}' for k, v in self._values().items())})"

    # The record's fields and the shared part's, read as the view's own.
    @property
    def record(self) -> PeerRecord:
        """The dump record the view was made of (the tracker's object, or one made for it)."""
        return self._record

    @property
    def interface(self) -> str:
        return self._record.interface

    @property
    def public_key(self) -> str:
        return self._record.public_key

    @property
    def endpoint(self) -> str | None:
        return self._record.endpoint

    @property
    def allowed_ips(self) -> tuple[str, ...]:
        return self._record.allowed_ips

    @property
    def latest_handshake(self) -> int:  # epoch s, 0 = never
        return self._record.latest_handshake

    @property
    def keepalive_s(self) -> int:
        return self._record.keepalive_s

    @property
    def reresolves(self) -> int:  # re-resolutions started while this peer was tracked
        return self._rare.reresolves

    @property
    def endpoint_changes(self) -> int:  # endpoints wgtrack applied
        return self._rare.endpoint_changes

    @property
    def roams(self) -> int:  # endpoint changes wgtrack did not make (peer_roamed events)
        return self._rare.roams

    @property
    def diagnosis(self) -> str | None:  # while down, with underlay_probe: tunnel_only / host_unreachable
        return self._rare.diagnosis

    @property
    def checks(self) -> tuple[CheckResult, ...]:  # the last results of the peer's service checks
        return self._rare.checks

    @property
    def friendly_labels(self) -> tuple[tuple[str, str], ...]:  # from "# friendly_json = {...}"
        return self._rare.friendly_labels

    @property
    def next_reresolve_s(self) -> float | None:  # when the next re-resolution is due, if one is planned
        return self._rare.next_reresolve_s

    @property
    def probe_silent(self) -> bool:  # the probe target does not answer; the link is judged by handshakes
        return self._rare.probe_silent

    @property
    def interface_key(self) -> str:  # the local interface's public key: with public_key, the link's two ends
        return self._rare.interface_key

    @property
    def endpoint_host(self) -> str | None:  # the hostname the endpoint is re-resolved from, if any
        return self._rare.endpoint_host

    @property
    def exported(self) -> bool:  # per_peer_metrics: series of its own in Prometheus and the Influx outputs
        return self._rare.exported

    @property
    def degraded(self) -> str | None:  # while up:degraded, why: loss, latency or mtu
        return self._rare.degraded

    @property
    def path_mtu(self) -> int | None:  # the largest inner packet the last path-MTU search saw pass
        return self._rare.path_mtu

    @property
    def mtu_note(self) -> str | None:  # why it has no path-MTU verdict (a silent target, no ICMP target, ...)
        return self._rare.mtu_note

    @property
    def counter_base(self) -> tuple[int, int]:  # what counter resets added to rx_bytes, tx_bytes
        return self._rare.counter_base

    @property
    def is_up(self) -> bool:
        return self.status.is_up

    def since_s(self, at: float) -> float:
        """Seconds in this status as of ``at`` (epoch seconds: the snapshot's time)."""
        return max(0.0, at - self.since)


# The view's fields but the shared part's, in the order the dataclass had them (repr, equality).
_OWN = ("interface", "public_key", "friendly_name", "endpoint", "allowed_ips", "latest_handshake", "handshake_age_s",
        "rx_bytes", "tx_bytes", "keepalive_s", "status", "since", "rtt_ms", "loss", "quality", "target")


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
