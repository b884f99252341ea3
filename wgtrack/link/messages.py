"""What the link machine is told (observations) and what it answers (actions): small frozen
values, built by the caller and by the machine, never carrying I/O."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from wgtrack.link.table import Status, Target

# ---- observations ----

class Sample(NamedTuple):
    """One dump reading of a peer, with what the config says about it.

    ``wall`` is the epoch time of the dump; ``rand`` a number in [0, 1) from the caller's
    random source, for jitter (tests pass fixed values). A tuple: a hub builds one per peer
    per cycle, and a tuple is built in a fraction of a frozen dataclass's time.
    """

    latest_handshake: int
    rx_bytes: int
    keepalive_s: int
    wall: float
    probe_target: str | None  # None when this peer cannot be probed
    endpoint: str | None = None  # the endpoint WireGuard uses now
    hostname: str | None = None  # set when the peer is eligible for re-resolution
    port: int | None = None
    handshake_target: str | None = None  # any address routed into this peer's tunnel
    rand: float = 0.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe through the tunnel."""

    ok: bool
    rtt_ms: float | None = None
    loss: float = 0.0
    reason: str = ""
    sent: int = 0  # echo requests sent (a burst confirms a failure); 0 = not said (checks, errors)
    rtts: tuple[float, ...] = ()  # each reply's round trip (ms), for the quality window


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed between dumps: the fast lane's chance to probe a down peer again."""

    wall: float


@dataclass(frozen=True, slots=True)
class Seen:
    """A read of the peer between cycles, made because the nflog trigger saw a handshake. Only
    its handshake and endpoint are news: counting cycles (probes, re-resolution) stays with the
    cycle's Sample."""

    latest_handshake: int
    endpoint: str | None
    wall: float


@dataclass(frozen=True, slots=True)
class UnderlayResult:
    """Outcome of one ICMP echo to the endpoint's own address, outside the tunnel."""

    ok: bool
    address: str = ""


@dataclass(frozen=True, slots=True)
class ResolveResult:
    """Outcome of re-resolving the peer's hostname: addresses, or why there are none."""

    addresses: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SetEndpointResult:
    """Outcome of ``wg set ... endpoint``."""

    endpoint: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Measured:
    """The link's quality as its probes measure it over the last five minutes (the caller's
    window), and the path MTU its last search found. None: not measured, nothing to say."""

    loss: float | None = None  # lost / sent in the window
    echoes: int = 0  # echo requests in the window
    rtt_ms: float | None = None  # the window's median RTT
    path_mtu: int | None = None  # the largest inner packet that passes, when below the tunnel's MTU
    mtu: int | None = None  # the tunnel's MTU (the size that should pass)


@dataclass(frozen=True, slots=True)
class MtuResult:
    """Outcome of a path-MTU search: the largest inner packet that passed (None: no verdict,
    and ``reason`` says why), against the tunnel's MTU."""

    path_mtu: int | None
    mtu: int | None
    reason: str = ""


Observation = Sample | ProbeResult | ResolveResult | SetEndpointResult | UnderlayResult | Tick | Seen | Measured \
    | MtuResult


# ---- actions ----

@dataclass(frozen=True, slots=True)
class Probe:
    """Send a probe through the tunnel to ``target`` and report a ``ProbeResult``."""

    target: str
    count: int = 0  # echo requests (any reply is life); 0 = the peer's ping_count


@dataclass(frozen=True, slots=True)
class SearchMtu:
    """Probe ``target`` with DF set at the tunnel's full size, and search down for the largest
    size that passes if it does not; report an ``MtuResult``."""

    target: str


@dataclass(frozen=True, slots=True)
class TriggerHandshake:
    """Send any packet into the tunnel (no probe target): WireGuard then starts a handshake."""

    target: str


@dataclass(frozen=True, slots=True)
class Resolve:
    """Resolve ``hostname`` and report a ``ResolveResult`` (never blocking the caller's loop)."""

    hostname: str


@dataclass(frozen=True, slots=True)
class SetEndpoint:
    """Point the peer at ``endpoint`` (numeric) and report a ``SetEndpointResult``."""

    endpoint: str
    old: str | None


@dataclass(frozen=True, slots=True)
class Changed:
    """The status changed; ``event`` says whether operators hear of it."""

    old: Status | None
    new: Status
    reason: str
    connected: bool = False  # idle -> up by a completed handshake: the peer connected
    details: tuple[tuple[str, str | int | float], ...] = ()  # degraded: its cause and figures, for the event

    @property
    def event(self) -> str | None:
        """``peer_down`` on entering a down state, ``peer_up`` on leaving one for up, or on an
        idle peer connecting (a road warrior's first handshake); ``peer_degraded`` and
        ``peer_recovered`` between up:ok and up:degraded. Moves between down states (the
        re-resolution schedule) and other moves to or from idle are no events."""
        old, new = self.old, self.new
        was_down = old is not None and old.is_down
        if new.is_down and not was_down:
            return "peer_down"
        if new.is_up and (was_down or self.connected):
            return "peer_up"
        if old is not None and old.is_up and new.is_up:
            return "peer_degraded" if new.value == "up:degraded" else "peer_recovered"
        return None


@dataclass(frozen=True, slots=True)
class EndpointChanged:
    """Event: wgtrack moved the peer to a new endpoint."""

    old: str | None
    new: str


@dataclass(frozen=True, slots=True)
class Roamed:
    """Event: the peer's endpoint changed and wgtrack did not change it (the peer moved and
    WireGuard followed its packets: a phone changing networks, a new NAT mapping)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ProbeUnderlay:
    """Ping the endpoint's address outside the tunnel and report an ``UnderlayResult``."""

    address: str


@dataclass(frozen=True, slots=True)
class Diagnosed:
    """Event: why a down link is likely down. ``tunnel_only``: the host answers, its tunnel does
    not (keys, a firewall on the UDP port, a stale endpoint); ``host_unreachable``: the host
    does not answer either (it is off, or the path to it is broken)."""

    cause: str
    address: str


@dataclass(frozen=True, slots=True)
class ResolveFailed:
    """Event: re-resolution or applying its result failed."""

    reason: str


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    """Log once: the probe target was declared silent, or answers again."""

    target: str
    verdict: Target
    reason: str


Effect = Probe | TriggerHandshake | Resolve | SetEndpoint | ProbeUnderlay | SearchMtu  # the caller carries these out
EFFECTS: tuple[type[Probe], type[TriggerHandshake], type[Resolve], type[SetEndpoint], type[ProbeUnderlay],
               type[SearchMtu]] = (Probe, TriggerHandshake, Resolve, SetEndpoint, ProbeUnderlay, SearchMtu)
Action = Effect | Changed | EndpointChanged | Roamed | Diagnosed | ResolveFailed | TargetVerdict

# A reading is the sample but for its time and its jitter draw; named, not sliced by position,
# so that a field added to Sample is compared (test_link_table checks each field).
_READING_FIELDS = tuple(i for i, name in enumerate(Sample._fields) if name not in ("wall", "rand"))
_reading = operator.itemgetter(*_READING_FIELDS)


def same_reading(a: Sample, b: Sample) -> bool:
    """Equal but for the time and the jitter draw."""
    return bool(_reading(a) == _reading(b))
