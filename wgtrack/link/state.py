"""What the link machine remembers about one peer, and the predicates its rules and fast
paths share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from wgtrack.link.settings import SESSION_S, LinkSettings
from wgtrack.link.table import Status, Target

if TYPE_CHECKING:
    from wgtrack.link.messages import Sample


class LinkMore(NamedTuple):
    """The part of a peer's state that most peers leave as it starts, most of the time: the
    re-resolution schedule, an endpoint being applied, a diagnosis, a degraded cause, a knock.
    One shared object (``NO_MORE``) for every peer whose part is so: a hub's states are 104 B
    smaller each (its fields read as the state's own, and ``replace`` sets them)."""

    quiet_cycles: int = 0  # samples since the last evidence of life (counted where re-resolution may follow)
    resolves: int = 0  # re-resolutions issued in this down episode
    last_resolve_at: int = -1  # quiet_cycles when the last one was issued
    next_resolve_at: int = -1  # in back-off: quiet_cycles of the next one
    backoff_cycles: int = 0  # current back-off interval (0 = not backing off)
    resolving: bool = False
    setting_endpoint: str | None = None  # an endpoint wgtrack is applying: seeing it is no roam
    setting_from: str | None = None  # the endpoint it replaces (a dump may show the new one first)
    diagnosis: str | None = None  # while down, with underlay_probe: tunnel_only / host_unreachable
    underlay_probe_at: float = -1e18  # monotonic time of the last underlay probe
    # Degraded (health.py): its cause while up:degraded (loss, latency, mtu); and the monotonic
    # time from which the measures have said otherwise (past a threshold while up:ok, within
    # every one while degraded), None while they agree with the status.
    degraded: str | None = None
    health_since: float | None = None
    silence_reason: str = ""  # set while a silent verdict is not yet announced (see _on_probe)
    # monotonic time our first failed probe with no session to carry it came back (a knock: the
    # probe made WireGuard initiate a handshake). Not when the probe was asked for: on a big hub
    # a probe may wait its turn for minutes (probe_rate), and a knock not yet sent proves nothing.
    knock_since: float | None = None


NO_MORE = LinkMore()


class LinkState(NamedTuple):
    """Everything the machine remembers about one peer. A tuple, for ``replace``: it runs for
    every peer every cycle, and ``_replace`` is three times faster than a dataclass's copy.
    The fields that are rarely set are in ``more`` (LinkMore), and read as the state's own.

    Nothing in it changes by time alone for a peer that is neither probed nor re-resolved:
    that is what lets the tracker skip such a peer when its dump line has not changed
    (``unchanged``)."""

    status: Status | None = None  # None until the first sample
    since: float = 0.0
    latest_handshake: int = 0
    rx_bytes: int = -1  # -1: no previous reading, so no growth can be claimed yet
    first_seen: float | None = None
    probe_failures: int = 0
    cycles_to_probe: int = 0
    rtt_ms: float | None = None
    loss: float | None = None
    endpoint: str | None = None
    last_sample: Sample | None = None
    target: Target = Target.UNPROVEN
    # epoch time (to the dump's whole second) before which a handshake is older than the first
    # failed probe of a run: it then says nothing of the link now
    failing_since: float = 0.0
    sampled_at: float = 0.0  # monotonic time of last_sample: with its wall time, the epoch now
    down_since: float = 0.0  # monotonic time the peer entered a down state
    last_probe_at: float = -1e18  # monotonic time of the last probe sent
    was_up: bool = False  # up at some time since tracking began (a departed peer never was)
    mtu_at: float = -1e18  # monotonic time the last path-MTU search was asked for (-1e18: none since up)
    mtu_short: bool = False  # the last search found the path smaller than the tunnel
    more: LinkMore = NO_MORE

    @property
    def probe_silent(self) -> bool:
        return self.target is Target.SILENT

    # LinkMore's fields, read as the state's own.
    @property
    def quiet_cycles(self) -> int:
        return self.more.quiet_cycles

    @property
    def resolves(self) -> int:
        return self.more.resolves

    @property
    def last_resolve_at(self) -> int:
        return self.more.last_resolve_at

    @property
    def next_resolve_at(self) -> int:
        return self.more.next_resolve_at

    @property
    def backoff_cycles(self) -> int:
        return self.more.backoff_cycles

    @property
    def resolving(self) -> bool:
        return self.more.resolving

    @property
    def setting_endpoint(self) -> str | None:
        return self.more.setting_endpoint

    @property
    def setting_from(self) -> str | None:
        return self.more.setting_from

    @property
    def diagnosis(self) -> str | None:
        return self.more.diagnosis

    @property
    def underlay_probe_at(self) -> float:
        return self.more.underlay_probe_at

    @property
    def degraded(self) -> str | None:
        return self.more.degraded

    @property
    def health_since(self) -> float | None:
        return self.more.health_since

    @property
    def silence_reason(self) -> str:
        return self.more.silence_reason

    @property
    def knock_since(self) -> float | None:
        return self.more.knock_since


_INDEX = {name: i for i, name in enumerate(LinkState._fields)}
_MORE_INDEX = {name: i for i, name in enumerate(LinkMore._fields)}
_MORE = _INDEX["more"]
FIELDS = (*(name for name in LinkState._fields if name != "more"), *LinkMore._fields)  # what replace sets
_new_tuple = tuple.__new__


def copy_with(state: LinkState, **changes: Any) -> LinkState:
    """``state._replace(**changes)`` at half its cost (0.7 µs against 1.3 for two changes): a
    probe a second per peer replaces the state twice a probe. LinkMore's fields go to ``more``
    (the shared NO_MORE again when they are all as they start). KeyError for a field it lacks."""
    values: list[Any] = list(state)
    more: list[Any] | None = None
    for name, value in changes.items():
        at = _INDEX.get(name)
        if at is not None:
            values[at] = value
            continue
        if more is None:
            more = list(values[_MORE])
        more[_MORE_INDEX[name]] = value
    if more is not None:
        made: LinkMore = _new_tuple(LinkMore, more)
        values[_MORE] = NO_MORE if made == NO_MORE else made
    new: LinkState = _new_tuple(LinkState, values)
    return new


def make_state(**fields: Any) -> LinkState:
    """A state with ``fields`` set, LinkMore's among them."""
    return copy_with(LinkState(), **fields) if fields else LinkState()


def replace(state: LinkState, **changes: Any) -> LinkState:
    """A copy of ``state`` with ``changes``; the very same object when they change nothing, so
    that an unchanged peer's state stays one object from cycle to cycle."""
    new = copy_with(state, **changes)
    return state if new == state else new


def session(latest_handshake: int, wall: float) -> bool:
    """Whether a session exists at ``wall``: a handshake younger than SESSION_S (keys usable)."""
    return bool(latest_handshake) and wall - latest_handshake < SESSION_S


def probes_decide(state: LinkState, settings: LinkSettings, target: str | None) -> bool:
    """Probes are evidence both ways only to a target that has answered (and not gone silent)."""
    return settings.ping_interval > 0 and target is not None and state.target is Target.ANSWERS


def probing(s: Sample, settings: LinkSettings) -> bool:
    """Whether the cycle may probe this peer. WireGuard cannot send to a peer without an
    endpoint: a probe would only be dropped."""
    return settings.ping_interval > 0 and s.probe_target is not None and s.endpoint is not None


def in_lane(state: LinkState, settings: LinkSettings) -> bool:
    """Down with the fast lane on: its probes come from the Tick alone."""
    return state.status is not None and state.status.is_down and settings.down_probe_interval_s > 0


def is_down(state: LinkState) -> bool:
    return state.status is not None and state.status.is_down


def lane_target(state: LinkState, settings: LinkSettings) -> str | None:
    """The target the fast lane probes, or None where it cannot: a new peer, no target, no
    endpoint (WireGuard would drop the probe), or probes off."""
    s = state.last_sample
    if state.status is None or s is None or not s.probe_target or s.endpoint is None or settings.ping_interval == 0:
        return None
    return s.probe_target
