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
from wgtrack.snapshot import InterfaceView, PeerView, Snapshot

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


def _peer_lines(ifname: str, peer: PeerView) -> str | tuple[str, ...]:
    """A peer's line and its checks' lines, each without its timestamp (one string when it has
    no checks, as most peers: a tuple per peer would cost a big hub 0.5 MB)."""
    tags = {"interface": ifname, "peer": peer.public_key, "friendly_name": peer.friendly_name}
    first = line("wgtrack", tags, peer_fields(peer), 0)[:-2]  # without " 0", the timestamp
    if not peer.checks:
        return first
    lines = [first]
    for result in peer.checks:
        lines.append(line("wgtrack_check", {**tags, "check": result.check},
                          {"ok": int(result.ok), "rtt_ms": result.rtt_ms, "error": result.error}, 0)[:-2])
    return tuple(lines)


class LineCache:
    """Each interface's peer lines without their timestamps, kept while its InterfaceView is
    the same object, and each peer's while its PeerView is: the tracker hands out the very
    same views while nothing but the time changed, so a big hub's unchanged interface costs one
    lookup and a join. One cache per output (each renders in its own thread); interfaces not
    in the last snapshot go.

    A peer's lines are found again by position (the views of an interface keep their order
    from snapshot to snapshot), falling back to a lookup by key when the peers moved: no
    per-peer entry of its own, which at 50,000 peers would cost more than the lines."""

    def __init__(self) -> None:
        # per interface: the views rendered, their lines (in the same order), all lines flat
        self._blocks: dict[str, tuple[InterfaceView, list[PeerView], list[str | tuple[str, ...]], list[str]]] = {}

    def block(self, iface: InterfaceView) -> list[str]:
        """The exported peers' lines of one interface (per_peer_metrics = no: in the totals only)."""
        found = self._blocks.get(iface.name)
        if found is not None and found[0] is iface:
            return found[3]
        old_views, old_texts = (found[1], found[2]) if found is not None else ([], [])
        by_key: dict[str, tuple[PeerView, str | tuple[str, ...]]] | None = None
        views: list[PeerView] = []
        texts: list[str | tuple[str, ...]] = []
        lines: list[str] = []
        for peer in iface.peers:
            if not peer.exported:
                continue
            at = len(views)
            if at < len(old_views) and old_views[at] is peer:
                text = old_texts[at]
            else:
                if by_key is None:
                    by_key = {v.public_key: (v, t) for v, t in zip(old_views, old_texts, strict=True)}
                hit = by_key.get(peer.public_key)
                text = hit[1] if hit is not None and hit[0] is peer else _peer_lines(iface.name, peer)
            views.append(peer)
            texts.append(text)
            if isinstance(text, str):
                lines.append(text)
            else:
                lines.extend(text)
        self._blocks[iface.name] = (iface, views, texts, lines)
        return lines

    def done(self, snapshot: Snapshot) -> None:
        listed = {iface.name for iface in snapshot.interfaces}
        for name in [n for n in self._blocks if n not in listed]:
            del self._blocks[name]


def _summary_lines(snapshot: Snapshot, iface: InterfaceView | None) -> Iterator[str]:
    """An interface's totals lines (and its groups'); with None, the tracker heartbeat."""
    ts = snapshot.time_ns
    if iface is None:
        yield line("wgtrack_tracker", {}, {
            "cycle": snapshot.cycle,
            "wg_ok": int(snapshot.wg_ok),
            "wg_error": snapshot.wg_error,
            "interfaces": len(snapshot.interfaces),
            "peers": sum(len(i.peers) for i in snapshot.interfaces),
            "cycle_duration_s": snapshot.cycle_duration_s,
            "loop_lag_ms": snapshot.loop_lag_ms,
            "uptime_s": max(0, (snapshot.time_ns - snapshot.started_ns) // 1_000_000_000),
            "version": __version__,
        }, ts)
        return
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


def render_lines(snapshot: Snapshot, cache: LineCache | None = None) -> Iterator[str]:
    """Every line of one snapshot: peers (each followed by its checks), then one per interface
    and friendly_json group, then the tracker heartbeat."""
    stamp = f" {snapshot.time_ns}"
    cache = cache or LineCache()
    for iface in snapshot.interfaces:
        for text in cache.block(iface):
            yield text + stamp
        yield from _summary_lines(snapshot, iface)
    yield from _summary_lines(snapshot, None)
    cache.done(snapshot)


def render(snapshot: Snapshot, cache: LineCache | None = None) -> str:
    """The whole file text for one snapshot, newline-terminated: the peers' cached lines joined
    with the timestamp (one C-level join per interface, not a step per peer)."""
    stamp = f" {snapshot.time_ns}\n"
    cache = cache or LineCache()
    parts: list[str] = []
    for iface in snapshot.interfaces:
        block = cache.block(iface)
        if block:
            parts += (stamp.join(block), stamp)
        parts += (text + "\n" for text in _summary_lines(snapshot, iface) if text)
    parts += (text + "\n" for text in _summary_lines(snapshot, None) if text)
    cache.done(snapshot)
    return "".join(parts)
