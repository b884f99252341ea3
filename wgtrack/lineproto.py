"""Pure InfluxDB line-protocol renderer for snapshots (the Telegraf file and stdout formats).

Escaping and number formatting match influxdb-client's ``Point.to_line_protocol`` (tests
use it as the oracle); keys are sorted as InfluxDB recommends. No newline ever reaches a
line: in names it is escaped as Point does, in string fields it becomes the text ``\\n``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from wgtrack import __version__
from wgtrack.link import Status
from wgtrack.snapshot import PeerView, Snapshot

FieldValue = int | float | str | bool | None

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING = str.maketrans({'"': r"\"", "\\": r"\\", "\n": r"\n", "\r": r"\r"})


def _tag_value(value: str) -> str:
    escaped = value.translate(_KEY)
    # A trailing backslash would escape the separator that follows it.
    return escaped + " " if escaped.endswith("\\") else escaped


def _field(key: str, value: FieldValue) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = f"{value}i"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(value)
        if text.endswith(".0"):
            text = text[:-2]
    else:
        text = '"' + value.translate(_STRING) + '"'
    return f"{key.translate(_KEY)}={text}"


def line(measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, FieldValue], time_ns: int) -> str:
    """One point. Empty tags and None or non-finite fields are left out; no fields, no line."""
    parts = [measurement.translate(_MEASUREMENT)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{key.translate(_KEY)}={_tag_value(value)}")
    rendered = [f for f in (_field(k, fields[k]) for k in sorted(fields)) if f is not None]
    if not rendered:
        return ""
    return f"{','.join(parts)} {','.join(rendered)} {time_ns}"


def peer_fields(peer: PeerView) -> dict[str, FieldValue]:
    """0.2.0's fields (now with integer counters) plus what operators need."""
    return {
        "transfer_rx": peer.rx_bytes,
        "transfer_tx": peer.tx_bytes,
        "status": peer.status.value,
        "is_up": int(peer.is_up),
        "latest_handshake": peer.latest_handshake,
        "handshake_age_s": peer.handshake_age_s,
        "endpoint": peer.endpoint,
        "keepalive_s": peer.keepalive_s,
        "rtt_ms": peer.rtt_ms,
        "loss": peer.loss,
        "probe_silent": int(peer.probe_silent),
        "roams": peer.roams,
        "diagnosis": peer.diagnosis,
    }


class LineCache:
    """Each peer's line without its timestamp, kept while the peer's view is the same object:
    the tracker hands out the very same view while nothing about a peer changed but the time,
    so on a big hub most peers (idle, departed) cost a lookup. One cache per output (each
    renders in its own thread); entries of peers not in the last snapshot go."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], tuple[PeerView, str]] = {}
        self._next: dict[tuple[str, str], tuple[PeerView, str]] = {}

    def peer(self, iface: str, peer: PeerView) -> str:
        key = (iface, peer.public_key)
        found = self._lines.get(key)
        if found is not None and found[0] is peer:
            self._next[key] = found
            return found[1]
        tags = {"interface": iface, "peer": peer.public_key, "friendly_name": peer.friendly_name}
        text = line("wgtrack", tags, peer_fields(peer), 0)[:-2]  # without " 0", the timestamp
        self._next[key] = (peer, text)
        return text

    def done(self) -> None:
        self._lines, self._next = self._next, {}


def render_lines(snapshot: Snapshot, cache: LineCache | None = None) -> Iterator[str]:
    """Every line of one snapshot: peers, then one per interface, then the tracker heartbeat."""
    ts = snapshot.time_ns
    stamp = f" {ts}"
    peers_total = 0
    cache = cache or LineCache()
    for iface in snapshot.interfaces:
        for peer in iface.peers:
            if not peer.exported:
                continue  # per_peer_metrics = no: in the totals only
            yield cache.peer(iface.name, peer) + stamp
            for result in peer.checks:
                yield line("wgtrack_check", {"interface": iface.name, "peer": peer.public_key,
                                             "friendly_name": peer.friendly_name, "check": result.check},
                           {"ok": int(result.ok), "rtt_ms": result.rtt_ms, "error": result.error}, ts)
        peers_total += len(iface.peers)
        for totals in iface.all_totals():
            states = dict(totals.states)
            up = states.get(Status.UP.value, 0)
            idle = states.get(Status.IDLE.value, 0)
            counts: dict[str, FieldValue] = {
                "peers": sum(states.values()), "peers_up": up, "peers_idle": idle,
                "peers_down": sum(states.values()) - up - idle,
                "transfer_rx": totals.rx_bytes, "transfer_tx": totals.tx_bytes,
            }
            if totals.labels:
                yield line("wgtrack_group", {**dict(totals.labels), "interface": iface.name}, counts, ts)
            else:
                yield line("wgtrack_interface", {"interface": iface.name}, {
                    **counts, "listen_port": iface.listen_port, "public_key": iface.public_key,
                    "wgtrack_host": snapshot.host or None}, ts)
    yield line("wgtrack_tracker", {}, {
        "cycle": snapshot.cycle,
        "wg_ok": int(snapshot.wg_ok),
        "wg_error": snapshot.wg_error,
        "interfaces": len(snapshot.interfaces),
        "peers": peers_total,
        "cycle_duration_s": snapshot.cycle_duration_s,
        "loop_lag_ms": snapshot.loop_lag_ms,
        "uptime_s": max(0, (snapshot.time_ns - snapshot.started_ns) // 1_000_000_000),
        "version": __version__,
    }, ts)
    cache.done()


def render(snapshot: Snapshot, cache: LineCache | None = None) -> str:
    """The whole file text for one snapshot, newline-terminated."""
    return "".join(text + "\n" for text in render_lines(snapshot, cache) if text)
