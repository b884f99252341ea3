"""Events: one record per meaningful change, keyed by interface and public key (never by
endpoint), carrying the evidence and a human sentence. Schema: ``docs/events.schema.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wgtrack.dump import split_qualified

KINDS = ("peer_down", "peer_up", "peer_degraded", "peer_recovered",
         "endpoint_changed", "peer_roamed", "peer_diagnosed", "reresolve_failed",
         "peer_added", "peer_removed", "interface_up", "interface_down", "tracker_started", "tracker_stopping")


# An event's empty evidence or details: one dict for all (a big hub's first dump makes 50,000
# events). Events are never changed once made, their dicts included; to_dict hands out copies.
NOTHING: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Event:
    """One change. ``interface``/``public_key`` are None for tracker events. Made once and never
    changed: events of one batch may share their evidence dict."""

    kind: str
    time: float  # epoch seconds
    message: str
    interface: str | None = None
    public_key: str | None = None
    friendly_name: str | None = None
    old_state: str | None = None
    new_state: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # handshake_age_s, probe_ok, rtt_ms, reason
    details: dict[str, Any] = field(default_factory=dict)  # old_endpoint, new_endpoint, reason, version

    def to_dict(self) -> dict[str, Any]:
        netns, ifname = split_qualified(self.interface) if self.interface is not None else ("", None)
        return {
            "kind": self.kind,
            "time": round(self.time, 3),
            **({"netns": netns} if netns else {}),  # only for another namespace: 0.3.0's events unchanged
            "interface": ifname,
            "public_key": self.public_key,
            "friendly_name": self.friendly_name,
            "old_state": self.old_state,
            "new_state": self.new_state,
            "message": self.message,
            "evidence": dict(self.evidence),
            "details": dict(self.details),
        }
