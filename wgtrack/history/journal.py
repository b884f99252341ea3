"""What the tracker decided since the last cycle, noted for the history store as it happens
(state changes, endpoints, removals), drained once a cycle into one batch. Plain lists on the
event loop: noting costs a tuple."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerRow:
    """A peer's row in the store's ``peers`` table: what a restart resumes from."""

    iface: str
    key: str
    name: str | None
    status: str  # a Status value, or "removed"
    since: float  # epoch seconds
    latest_handshake: int
    endpoint: str | None
    rx_base: int
    tx_base: int
    rx: int  # WireGuard's own counter when written (with the base: the exported total)
    tx: int
    degraded: str | None = None
    target: str | None = None  # a link.Target value: whether probes decide (answers) or not

    def values(self) -> tuple[object, ...]:
        return (self.iface, self.key, self.name, self.status, self.since, self.latest_handshake, self.endpoint,
                self.rx_base, self.tx_base, self.rx, self.tx, self.degraded, self.target)


@dataclass(frozen=True, slots=True)
class Change:
    """One status change: the row it leaves and where it came from."""

    time: float
    old: str | None
    reason: str
    row: PeerRow


class Journal:
    """Changes and endpoint moves since the last drain, in order."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.endpoints: list[tuple[float, str, str, str | None, str, str]] = []  # time, iface, key, old, new, kind

    def changed(self, time: float, old: str | None, reason: str, row: PeerRow) -> None:
        self.changes.append(Change(time, old, reason, row))

    def endpoint(self, time: float, iface: str, key: str, old: str | None, new: str, kind: str) -> None:
        """``kind``: ``set`` (wgtrack applied a re-resolved address) or ``roam`` (the peer moved)."""
        self.endpoints.append((time, iface, key, old, new, kind))

    def drain(self) -> tuple[list[Change], list[tuple[float, str, str, str | None, str, str]]]:
        changes, endpoints = self.changes, self.endpoints
        self.changes, self.endpoints = [], []
        return changes, endpoints
