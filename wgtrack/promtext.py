"""Pure, streaming renderer of the Prometheus text exposition (format 0.0.4) for a snapshot.

prometheus_client's ``generate_latest`` needs ~2.7 s and a ~30 MB string for 10,000 peers
(220,000 samples); this renderer reuses each peer's label text between scrapes, yields the
exposition in chunks (so the HTTP handler can stream it with bounded memory) and is checked
against prometheus_client's own exposition of the same snapshot (tests/promoracle.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from wgtrack import __version__
from wgtrack.dump import interface_labels
from wgtrack.link import Status
from wgtrack.quality import BUCKETS_S, QualityView
from wgtrack.snapshot import PeerView, Snapshot

STATES = tuple(s.value for s in Status)
_RESERVED = {"interface", "public_key", "allowed_ips", "friendly_name", "state", "endpoint", "kind", "version"}
CHUNK_PEERS = 500  # peers per yielded chunk


def valid_label(name: str) -> bool:
    """A friendly_json key usable as a label: Prometheus syntax, not ours, not ``__`` reserved."""
    if not name or name.startswith("__") or name in _RESERVED or name[0].isdigit():
        return False
    return all(c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z") or (c.isdigit() and c.isascii()) for c in name)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _head(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


PEER_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("wireguard_sent_bytes_total", "counter", "Bytes sent to the peer"),
    ("wireguard_received_bytes_total", "counter", "Bytes received from the peer"),
    ("wireguard_latest_handshake_seconds", "gauge", "Epoch seconds of the latest handshake (0 = never)"),
    ("wireguard_latest_handshake_delay_seconds", "gauge", "Seconds since the latest handshake"),
    ("wgtrack_peer_up", "gauge", "1 when the link shows evidence of life"),
    ("wgtrack_peer_state", "gauge", "1 for the peer's current state, 0 for the others"),
    ("wgtrack_peer_state_seconds", "gauge", "Seconds since the last state change"),
    ("wgtrack_peer_probe_last_rtt_seconds", "gauge", "Round-trip time of the last probe"),
    ("wgtrack_peer_probe_loss_ratio", "gauge", "Packet loss of the last probe (0-1)"),
    ("wgtrack_peer_probes_total", "counter", "Echo requests sent through the tunnel"),
    ("wgtrack_peer_probe_replies_total", "counter", "Echo replies received through the tunnel"),
    ("wgtrack_peer_probe_rtt_seconds", "histogram", "Round-trip times of the echo replies"),
    ("wgtrack_peer_probe_silent", "gauge", "1 when the probe target does not answer and handshakes judge the link"),
    ("wgtrack_peer_reresolves_total", "counter", "Endpoint re-resolutions started"),
    ("wgtrack_peer_endpoint_changes_total", "counter", "Endpoints applied by wgtrack"),
    ("wgtrack_peer_roams_total", "counter", "Endpoint changes wgtrack did not make (the peer moved)"),
    ("wgtrack_peer_underlay_up", "gauge",
     "A down peer's host outside the tunnel: 1 answers (tunnel_only), 0 does not (host_unreachable)"),
    ("wgtrack_peer_degraded", "gauge", "1 while the link is up:degraded, with its reason: loss, latency or mtu"),
    ("wgtrack_peer_path_mtu_bytes", "gauge", "The largest inner packet the last path-MTU search saw pass"),
    ("wgtrack_peer_keepalive_seconds", "gauge", "Persistent keepalive (0 = off)"),
    ("wgtrack_peer_info", "gauge", "Peer facts: endpoint, allowed IPs, and the link (both ends' keys)"),
)


_STATE_SUFFIXES = {status: tuple(f',state="{s}"}} {1 if s == status else 0}\n' for s in STATES) for status in STATES}


class LabelCache:
    """Label text per peer, kept between scrapes (a scrape only formats numbers); entries of
    peers that are gone are dropped after each scrape."""

    def __init__(self) -> None:
        self._compat: dict[tuple[object, ...], str] = {}
        self._own: dict[tuple[str, str, str | None], str] = {}

    def compat(self, p: PeerView) -> str:
        key = (p.interface, p.public_key, p.allowed_ips, p.friendly_name, p.friendly_labels)
        text = self._compat.get(key)
        if text is None:
            pairs = [*interface_labels(p.interface), ("public_key", p.public_key),
                     ("allowed_ips", ",".join(p.allowed_ips))]
            if p.friendly_name:
                pairs.append(("friendly_name", p.friendly_name))
            pairs += [(k, v) for k, v in p.friendly_labels if valid_label(k)]
            text = self._compat[key] = _labels(pairs)
        return text

    def own(self, p: PeerView) -> str:
        """Without the closing brace, so ``state`` or info labels can follow."""
        key = (p.interface, p.public_key, p.friendly_name)
        text = self._own.get(key)
        if text is None:
            full = _labels([*interface_labels(p.interface), ("public_key", p.public_key),
                            ("friendly_name", p.friendly_name or "")])
            text = self._own[key] = full[:-1]
        return text

    def prune(self, snap: Snapshot) -> None:
        keep = {(p.interface, p.public_key) for i in snap.interfaces for p in i.peers}
        if len(keep) < len(self._own):
            self._compat = {k: v for k, v in self._compat.items() if (k[0], k[1]) in keep}
            self._own = {k: v for k, v in self._own.items() if (k[0], k[1]) in keep}


def _peer_lines(family: str, peers: list[PeerView], compat: list[str], own: list[str], at: float) -> str:
    """One family's lines for a slice of peers, given their label text; only numbers are formatted."""
    if family.startswith("wireguard_"):
        if family == "wireguard_sent_bytes_total":
            values: list[object] = [p.tx_bytes for p in peers]
        elif family == "wireguard_received_bytes_total":
            values = [p.rx_bytes for p in peers]
        elif family == "wireguard_latest_handshake_seconds":
            values = [p.latest_handshake for p in peers]
        else:
            values = [p.handshake_age_s for p in peers]
        return "".join([f"{family}{c} {v}\n" for c, v in zip(compat, values, strict=True) if v is not None])
    if family == "wgtrack_peer_state":
        return "".join([("wgtrack_peer_state" + o).join(("", *_STATE_SUFFIXES[p.status.value]))
                        for o, p in zip(own, peers, strict=True)])
    if family == "wgtrack_peer_info":
        return "".join([f'{family}{o},endpoint="{_escape(p.endpoint or "")}",'
                        f'allowed_ips="{",".join(p.allowed_ips)}",link="{link_id(p)}"}} 1\n'
                        for o, p in zip(own, peers, strict=True)])
    if family == "wgtrack_peer_degraded":  # a series only while degraded: its reason is a label
        return "".join([f'{family}{o},reason="{p.degraded}"}} 1\n' for o, p in zip(own, peers, strict=True)
                        if p.degraded])
    if family == "wgtrack_peer_probe_rtt_seconds":
        return "".join([_histogram(o, p.quality) for o, p in zip(own, peers, strict=True) if p.quality])
    if family == "wgtrack_peer_state_seconds":
        return "".join([f"{family}{o}}} {round(p.since_s(at), 3)}\n" for o, p in zip(own, peers, strict=True)])
    numbers = _OWN_VALUES[family](peers)
    # ints and finite floats only here: str() is the exposition's number format for both.
    return "".join([f"{family}{o}}} {v}\n" for o, v in zip(own, numbers, strict=True) if v is not None])


_OWN_VALUES: dict[str, Callable[[list[PeerView]], list[float | None]]] = {
    "wgtrack_peer_up": lambda ps: [int(p.is_up) for p in ps],
    "wgtrack_peer_probe_last_rtt_seconds": lambda ps: [None if p.rtt_ms is None else p.rtt_ms / 1000 for p in ps],
    "wgtrack_peer_probe_loss_ratio": lambda ps: [p.loss for p in ps],
    "wgtrack_peer_probes_total": lambda ps: [p.quality.probes if p.quality else None for p in ps],
    "wgtrack_peer_probe_replies_total": lambda ps: [p.quality.replies if p.quality else None for p in ps],
    "wgtrack_peer_probe_silent": lambda ps: [int(p.probe_silent) for p in ps],
    "wgtrack_peer_reresolves_total": lambda ps: [p.reresolves for p in ps],
    "wgtrack_peer_endpoint_changes_total": lambda ps: [p.endpoint_changes for p in ps],
    "wgtrack_peer_roams_total": lambda ps: [p.roams for p in ps],
    "wgtrack_peer_underlay_up": lambda ps: [None if p.diagnosis is None else int(p.diagnosis == "tunnel_only")
                                            for p in ps],
    "wgtrack_peer_path_mtu_bytes": lambda ps: [p.path_mtu for p in ps],
    "wgtrack_peer_keepalive_seconds": lambda ps: [p.keepalive_s for p in ps],
}


_LE = tuple(f',le="{bound}"}} ' for bound in (*BUCKETS_S, "+Inf"))


def _histogram(own: str, quality: QualityView) -> str:
    """One peer's RTT histogram: its buckets (cumulative), sum and count."""
    head = "wgtrack_peer_probe_rtt_seconds_bucket" + own
    lines = [f"{head}{le}{count}\n" for le, count in zip(_LE, quality.buckets, strict=True)]
    lines.append(f"wgtrack_peer_probe_rtt_seconds_sum{own}}} {quality.rtt_sum_s}\n")
    lines.append(f"wgtrack_peer_probe_rtt_seconds_count{own}}} {quality.replies}\n")
    return "".join(lines)


def link_id(peer: PeerView) -> str:
    """The same for both ends of a link: the two public keys, sorted, comma-joined."""
    return ",".join(sorted((peer.interface_key, peer.public_key)))


def render_chunks(snap: Snapshot | None, cache: LabelCache) -> Iterator[str]:
    """The whole exposition, in chunks of at most ``CHUNK_PEERS`` peers of one family."""
    yield _head("wgtrack_build_info", "gauge", "wgtrack version") + f'wgtrack_build_info{{version="{__version__}"}} 1\n'
    if snap is None:
        return
    yield (_head("wgtrack_up", "gauge", "1 when the last cycle read WireGuard successfully")
           + f"wgtrack_up {int(snap.wg_ok)}\n"
           + _head("wgtrack_last_collection_timestamp_seconds", "gauge",
                   "When WireGuard was last read successfully (0 = never)")
           + f"wgtrack_last_collection_timestamp_seconds {_num(snap.last_success_ns / 1e9)}\n"
           + _head("wgtrack_cycle_duration_seconds", "gauge", "How long the last cycle took")
           + f"wgtrack_cycle_duration_seconds {_num(float(snap.cycle_duration_s))}\n"
           + _head("wgtrack_event_loop_lag_seconds", "gauge", "Worst event-loop wake-up delay in the last cycle")
           + f"wgtrack_event_loop_lag_seconds {_num(snap.loop_lag_ms / 1000)}\n"
           + _head("wgtrack_collection_errors_total", "counter", "Collection errors by kind (wg, parse, output)")
           + "".join(f'wgtrack_collection_errors_total{{kind="{k}"}} {n}\n' for k, n in snap.errors))
    peers = [p for iface in snap.interfaces for p in iface.peers if p.exported]  # per_peer_metrics
    compat = [cache.compat(p) for p in peers]  # label text once per peer, for every family
    own = [cache.own(p) for p in peers]
    for family, kind, help_text in PEER_FAMILIES:
        yield _head(family, kind, help_text)
        for start in range(0, len(peers), CHUNK_PEERS):
            end = start + CHUNK_PEERS
            yield _peer_lines(family, peers[start:end], compat[start:end], own[start:end], snap.time_ns / 1e9)
    yield from _check_lines(peers, own)
    info = _head("wgtrack_interface_info", "gauge", "Each interface's own public key and this host's name")
    info += "".join(f'wgtrack_interface_info{{{_iface(iface.name)},public_key="{iface.public_key}",'
                    f'host="{_escape(snap.host)}"}} 1\n' for iface in snap.interfaces)
    yield info
    yield _interface_lines(snap)
    cache.prune(snap)


def _iface(name: str) -> str:
    """An interface's labels, written out: ``interface="wg0"`` (and ``netns`` in front, for another namespace)."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in interface_labels(name))


def _group_labels(iface: str, labels: tuple[tuple[str, str], ...]) -> str:
    pairs = interface_labels(iface) + [(k, v) for k, v in labels
                                       if valid_label(k) and k not in ("interface", "state", "netns")]
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _interface_lines(snap: Snapshot) -> str:
    """Per interface and per friendly_json group: peers by state and byte totals (every peer,
    with per_peer_metrics or without: the series a big hub keeps)."""
    up = _head("wgtrack_interface_up", "gauge", "1 for every interface present")
    counts = _head("wgtrack_interface_peers", "gauge", "Peers per interface by state")
    rx = _head("wgtrack_interface_received_bytes_total", "counter", "Bytes received from all the interface's peers")
    tx = _head("wgtrack_interface_sent_bytes_total", "counter", "Bytes sent to all the interface's peers")
    groups = _head("wgtrack_group_peers", "gauge", "Peers per friendly_json group by state")
    group_rx = _head("wgtrack_group_received_bytes_total", "counter", "Bytes received from a group's peers")
    group_tx = _head("wgtrack_group_sent_bytes_total", "counter", "Bytes sent to a group's peers")
    for iface in snap.interfaces:
        name = _iface(iface.name)
        up += f'wgtrack_interface_up{{{name}}} 1\n'
        for totals in iface.all_totals():
            labels = _group_labels(iface.name, totals.labels)
            if totals.labels:
                groups += "".join(f'wgtrack_group_peers{{{labels},state="{s}"}} {n}\n' for s, n in totals.states)
                group_rx += f"wgtrack_group_received_bytes_total{{{labels}}} {totals.rx_bytes}\n"
                group_tx += f"wgtrack_group_sent_bytes_total{{{labels}}} {totals.tx_bytes}\n"
            else:
                counts += "".join(f'wgtrack_interface_peers{{{name},state="{s}"}} {n}\n'
                                  for s, n in totals.states)
                rx += f'wgtrack_interface_received_bytes_total{{{name}}} {totals.rx_bytes}\n'
                tx += f'wgtrack_interface_sent_bytes_total{{{name}}} {totals.tx_bytes}\n'
    return up + counts + rx + tx + groups + group_rx + group_tx


def _check_lines(peers: list[PeerView], own: list[str]) -> Iterator[str]:
    """Per service check: up (0/1) and its RTT, labelled by the check as written."""
    checked = [(p, o) for p, o in zip(peers, own, strict=True) if p.checks]
    up = _head("wgtrack_peer_check_up", "gauge", "1 when the service check through the tunnel succeeded")
    rtt = _head("wgtrack_peer_check_rtt_seconds", "gauge", "How long the last successful service check took")
    for peer, labels in checked:
        for result in peer.checks:
            tail = f',check="{_escape(result.check)}"}}'
            up += f"wgtrack_peer_check_up{labels}{tail} {int(result.ok)}\n"
            if result.ok and result.rtt_ms is not None:
                rtt += f"wgtrack_peer_check_rtt_seconds{labels}{tail} {_num(result.rtt_ms / 1000)}\n"
    yield up + rtt


def render(snap: Snapshot | None) -> str:
    """The whole exposition as one string (tests, small snapshots)."""
    return "".join(render_chunks(snap, LabelCache()))
