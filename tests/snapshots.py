"""Snapshot builders shared by renderer and output tests."""

from __future__ import annotations

from wgtrack.link import Status
from wgtrack.snapshot import InterfaceView, PeerView, Snapshot

KEY_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
KEY_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
T_NS = 1_795_000_000_123_456_789


def peer(key: str = KEY_A, **over: object) -> PeerView:
    values: dict[str, object] = dict(
        interface="wg0", public_key=key, friendly_name="alice", endpoint="198.51.100.11:51820",
        allowed_ips=("192.0.2.11/32",), latest_handshake=1_794_999_900, handshake_age_s=100,
        rx_bytes=1234, tx_bytes=5678, keepalive_s=25, status=Status.UP, since=T_NS / 1e9 - 3.0,
        rtt_ms=0.25, loss=0.0,
    )
    values.update(over)
    return PeerView(**values)  # type: ignore[arg-type]


def snapshot(*peers: PeerView, wg_ok: bool = True, wg_error: str | None = None) -> Snapshot:
    ifaces = (InterfaceView("wg0", KEY_B, 51820, tuple(peers)),) if wg_ok else ()
    return Snapshot(time_ns=T_NS, cycle=7, wg_ok=wg_ok, wg_error=wg_error, interfaces=ifaces,
                    cycle_duration_s=0.5, started_ns=T_NS - 60_000_000_000)
