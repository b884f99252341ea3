"""The immutable picture of one cycle that every output receives."""

from __future__ import annotations

from dataclasses import dataclass


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
    status: str
    is_up: bool
    since_s: float  # seconds in this status
    rtt_ms: float | None
    loss: float | None


@dataclass(frozen=True, slots=True)
class InterfaceView:
    """One interface and its peers."""

    name: str
    public_key: str
    listen_port: int | None
    peers: tuple[PeerView, ...]


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
