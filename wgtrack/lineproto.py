"""Pure InfluxDB line-protocol renderer for snapshots (the Telegraf file and stdout formats).

Escaping and number formatting match influxdb-client's ``Point.to_line_protocol`` (tests
use it as the oracle); keys are sorted as InfluxDB recommends. No newline ever reaches a
line: in names it is escaped as Point does, in string fields it becomes the text ``\\n``.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import cast

from wgtrack import __version__, quality
from wgtrack.dump import interface_labels
from wgtrack.link import Status
from wgtrack.snapshot import InterfaceView, PeerView, Snapshot
from wgtrack.workers import TURN_EVERY

FieldValue = int | float | str | bool | None

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING = str.maketrans({'"': r"\"", "\\": r"\\", "\n": r"\n", "\r": r"\r"})


_SPECIAL_KEY = re.compile(r"[,= \n\t\r]")
_SPECIAL_STRING = re.compile(r'["\\\n\r]')
_KEYS: dict[str, str] = {}  # escaped keys: the names are the code's own, a few dozen
_KEYS_MAX = 1024  # should names ever come from outside, the memo stays bounded


def _key(key: str) -> str:
    """``key`` escaped (a translate is 0.6 µs, and a 10,000-peer hub's lines name keys 200,000
    times a cycle)."""
    found = _KEYS.get(key)
    if found is None:
        found = key.translate(_KEY) if _SPECIAL_KEY.search(key) else key
        if len(_KEYS) < _KEYS_MAX:
            _KEYS[key] = found
    return found


def _tag_value(value: str) -> str:
    escaped = value.translate(_KEY) if _SPECIAL_KEY.search(value) else value
    # A trailing backslash would escape the separator that follows it.
    return escaped + " " if escaped.endswith("\\") else escaped


def _value(value: FieldValue) -> str | None:
    """A field's value as the line has it; None leaves the field out. The exact types first, by
    identity (isinstance chains cost a Telegraf line a microsecond each)."""
    kind = type(value)
    if kind is int:
        return f"{value}i"
    if kind is str:
        text = cast(str, value)
        return '"' + (text.translate(_STRING) if _SPECIAL_STRING.search(text) else text) + '"'
    if kind is float or isinstance(value, float):
        number = float(cast(float, value))
        if not math.isfinite(number):
            return None
        text = repr(number)
        return text[:-2] if text.endswith(".0") else text
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):  # a subclass (an IntEnum)
        return f"{int(value)}i"
    return _value(str.__str__(value))  # a subclass of str (a StrEnum): its text, not its name


def line(measurement: str, tags: Mapping[str, str | None], fields: Mapping[str, FieldValue], time_ns: int) -> str:
    """One point. Empty tags and None or non-finite fields are left out; no fields, no line."""
    parts = [measurement.translate(_MEASUREMENT)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            parts.append(f"{_key(key)}={_tag_value(value)}")
    rendered = []
    for key in sorted(fields):
        text = _value(fields[key])
        if text is not None:
            rendered.append(f"{_key(key)}={text}")
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
        "degraded": peer.degraded,
        "path_mtu": peer.path_mtu,
        **quality.fields(peer.quality),
    }


def _peer_text(ifname: str, peer: PeerView) -> bytes:
    """A peer's line and its checks' lines, each without its timestamp and ending in a newline."""
    tags = {**dict(interface_labels(ifname)), "peer": peer.public_key, "friendly_name": peer.friendly_name}
    lines = [line("wgtrack", tags, peer_fields(peer), 0)[:-2]]  # without " 0", the timestamp
    for result in peer.checks:
        lines.append(line("wgtrack_check", {**tags, "check": result.check},
                          {"ok": int(result.ok), "rtt_ms": result.rtt_ms, "error": result.error}, 0)[:-2])
    lines.append("")
    return "\n".join(lines).encode()


class LineCache:
    """Each interface's exported peer lines, without their timestamps, as one block of UTF-8
    (each line ending in a newline), kept while its InterfaceView is the same object: the
    tracker hands out the very same views while nothing but the time changed, so a big hub's
    unchanged interface costs one lookup and a replace. One cache per output (each renders in
    its own thread); interfaces not in the last snapshot go.

    A block, not a string per peer: at 5,000 peers those were 1.2 MB of small objects, made by
    the first render in among the events still waiting to be published, and the room both took
    stayed with the process. A view that is the same object as before keeps its lines: runs of
    them are carried over from the old block as slices, found by position (the views of an
    interface keep their order from snapshot to snapshot) or else by key (peers came or went)."""

    def __init__(self) -> None:
        # per interface: the view rendered, its exported peers' views (in order), their block,
        # and where each one's lines begin in it
        self._blocks: dict[str, tuple[InterfaceView, tuple[PeerView, ...], bytes, array[int]]] = {}

    def block(self, iface: InterfaceView, turn: Callable[[], None] | None = None) -> bytes:
        """The exported peers' lines of one interface (per_peer_metrics = no: in the totals only).
        ``turn`` is called after every TURN_EVERY peers rendered anew (workers.loop_turns)."""
        found = self._blocks.get(iface.name)
        if found is not None and found[0] is iface:
            return found[2]
        old_views, old_block, old_starts = found[1:] if found is not None else ((), b"", array("I"))
        views = iface.peers
        if not all(peer.exported for peer in views):
            views = tuple(peer for peer in views if peer.exported)
        by_key: dict[str, int] | None = None
        parts: list[bytes] = []
        starts = array("I")
        size, run_from, run_to = 0, -1, -1  # run: the old block's bytes carried over as one slice
        rendered = 0
        for at, peer in enumerate(views):
            old = at if at < len(old_views) and old_views[at] is peer else -1
            if old < 0 and old_views:
                if by_key is None:
                    by_key = {view.public_key: i for i, view in enumerate(old_views)}
                old = by_key.get(peer.public_key, -1)
                if old >= 0 and old_views[old] is not peer:
                    old = -1
            starts.append(size)
            if old >= 0:
                begin = old_starts[old]
                end = old_starts[old + 1] if old + 1 < len(old_starts) else len(old_block)
                if begin != run_to:
                    if run_to > run_from:
                        parts.append(old_block[run_from:run_to])
                    run_from = begin
                run_to = end
                size += end - begin
            else:
                if run_to > run_from:
                    parts.append(old_block[run_from:run_to])
                run_from = run_to = -1
                text = _peer_text(iface.name, peer)
                parts.append(text)
                size += len(text)
                rendered += 1
                if turn is not None and rendered % TURN_EVERY == 0:
                    turn()
        if run_to > run_from:
            parts.append(old_block[run_from:run_to])
        block = parts[0] if len(parts) == 1 else b"".join(parts)
        self._blocks[iface.name] = (iface, views, block, starts)
        return block

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
        up = states.get(Status.UP.value, 0) + states.get(Status.DEGRADED.value, 0)
        idle = states.get(Status.IDLE.value, 0)
        counts: dict[str, FieldValue] = {
            "peers": sum(states.values()), "peers_up": up, "peers_idle": idle,
            "peers_down": sum(states.values()) - up - idle,
            "transfer_rx": totals.rx_bytes, "transfer_tx": totals.tx_bytes,
        }
        if totals.labels:
            yield line("wgtrack_group", {**dict(totals.labels), **dict(interface_labels(iface.name))}, counts, ts)
        else:
            yield line("wgtrack_interface", dict(interface_labels(iface.name)), {
                **counts, "listen_port": iface.listen_port, "public_key": iface.public_key,
                "wgtrack_host": snapshot.host or None}, ts)


def render_lines(snapshot: Snapshot, cache: LineCache | None = None) -> Iterator[str]:
    """Every line of one snapshot: peers (each followed by its checks), then one per interface
    and friendly_json group, then the tracker heartbeat."""
    stamp = f" {snapshot.time_ns}"
    cache = cache or LineCache()
    for iface in snapshot.interfaces:
        for text in cache.block(iface).decode().split("\n")[:-1]:
            yield text + stamp
        yield from _summary_lines(snapshot, iface)
    yield from _summary_lines(snapshot, None)
    cache.done(snapshot)


def render_bytes(snapshot: Snapshot, cache: LineCache | None = None,
                 turn: Callable[[], None] | None = None) -> bytes:
    """The whole file for one snapshot, UTF-8, newline-terminated (``render_parts`` joined)."""
    return b"".join(render_parts(snapshot, cache, turn))


def render_parts(snapshot: Snapshot, cache: LineCache | None = None,
                 turn: Callable[[], None] | None = None) -> Iterator[bytes]:
    """The whole file for one snapshot in pieces, to be written one after another: each
    interface's cached block with the timestamp put before every newline (one C-level replace
    per piece, not a step per peer), then its summary lines.

    The cache is brought up to date before the first piece is made; a block is stamped in
    pieces of about STAMP_PIECE bytes while it is written. A hub's whole file made at once (or
    its block stamped in one go) is megabytes that malloc maps for the write and hands back
    after it, so every cycle faulted them in anew (2-3 ms of system time a cycle at 10,000
    peers); keeping them instead cost 2 MB of RSS. Pieces below malloc's mmap threshold are
    taken from, and go back to, the heap it already has."""
    stamp = f" {snapshot.time_ns}\n".encode()
    cache = cache or LineCache()
    blocks = [(cache.block(iface, turn), _summary_bytes(snapshot, iface)) for iface in snapshot.interfaces]
    blocks.append((b"", _summary_bytes(snapshot, None)))
    cache.done(snapshot)
    return _stamped(blocks, stamp)


STAMP_PIECE = 32 * 1024  # bytes of a block stamped at once: its stamped copy stays below 128 KiB


def _summary_bytes(snapshot: Snapshot, iface: InterfaceView | None) -> list[bytes]:
    return [(text + "\n").encode() for text in _summary_lines(snapshot, iface) if text]


def _stamped(blocks: list[tuple[bytes, list[bytes]]], stamp: bytes) -> Iterator[bytes]:
    for block, summary in blocks:
        start = 0
        while start < len(block):
            end = block.find(b"\n", start + STAMP_PIECE)  # the piece ends with the line it reaches into
            end = len(block) if end < 0 else end + 1
            yield block[start:end].replace(b"\n", stamp)
            start = end
        yield from summary


def render(snapshot: Snapshot, cache: LineCache | None = None) -> str:
    """``render_bytes`` as text."""
    return render_bytes(snapshot, cache).decode()
