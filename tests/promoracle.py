"""The oracle for wgtrack/promtext.py: the same metric families built with prometheus_client,
whose ``generate_latest`` output the fast renderer must match sample for sample."""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from wgtrack import __version__
from wgtrack.link import Status
from wgtrack.quality import BUCKETS_S
from wgtrack.snapshot import PeerView, Snapshot

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED = {"interface", "public_key", "allowed_ips", "friendly_name", "state", "endpoint", "kind", "version"}
STATES = tuple(s.value for s in Status)


def valid_label(name: str) -> bool:
    """A friendly_json key usable as a label: Prometheus syntax, not ours, not ``__`` reserved."""
    return bool(_LABEL.match(name)) and not name.startswith("__") and name not in _RESERVED


def _compat_labels(peer: PeerView) -> tuple[list[str], list[str]]:
    names = ["interface", "public_key", "allowed_ips"]
    values = [peer.interface, peer.public_key, ",".join(peer.allowed_ips)]
    if peer.friendly_name:
        names.append("friendly_name")
        values.append(peer.friendly_name)
    for key, value in peer.friendly_labels:
        if valid_label(key):
            names.append(key)
            values.append(value)
    return names, values


def _peer_labels(peer: PeerView) -> list[str]:
    return [peer.interface, peer.public_key, peer.friendly_name or ""]


PEER = ["interface", "public_key", "friendly_name"]


def families(snap: Snapshot | None) -> Iterator[Metric]:
    """Every metric family for one snapshot (``None``: before the first cycle)."""
    build = InfoMetricFamily("wgtrack_build", "wgtrack version", labels=["version"])
    build.add_metric([__version__], {})
    yield build
    if snap is None:
        return
    yield GaugeMetricFamily("wgtrack_up", "1 when the last cycle read WireGuard successfully", value=int(snap.wg_ok))
    yield GaugeMetricFamily("wgtrack_last_collection_timestamp_seconds",
                            "When WireGuard was last read successfully (0 = never)",
                            value=snap.last_success_ns / 1e9)
    yield GaugeMetricFamily("wgtrack_cycle_duration_seconds", "How long the last cycle took",
                            value=snap.cycle_duration_s)
    yield GaugeMetricFamily("wgtrack_event_loop_lag_seconds", "Worst event-loop wake-up delay in the last cycle",
                            value=snap.loop_lag_ms / 1000)
    errors = CounterMetricFamily("wgtrack_collection_errors", "Collection errors by kind (wg, parse, output)",
                                 labels=["kind"])
    for kind, count in snap.errors:
        errors.add_metric([kind], count)
    yield errors

    # Family objects are created once and filled peer by peer: one pass over the peers.
    sent = CounterMetricFamily("wireguard_sent_bytes", "Bytes sent to the peer")
    received = CounterMetricFamily("wireguard_received_bytes", "Bytes received from the peer")
    latest = GaugeMetricFamily("wireguard_latest_handshake_seconds",
                               "Epoch seconds of the latest handshake (0 = never)")
    delay = GaugeMetricFamily("wireguard_latest_handshake_delay_seconds", "Seconds since the latest handshake")
    up = GaugeMetricFamily("wgtrack_peer_up", "1 when the link shows evidence of life", labels=PEER)
    state = GaugeMetricFamily("wgtrack_peer_state", "1 for the peer's current state, 0 for the others",
                              labels=[*PEER, "state"])
    since = GaugeMetricFamily("wgtrack_peer_state_seconds", "Seconds since the last state change", labels=PEER)
    rtt = GaugeMetricFamily("wgtrack_peer_probe_last_rtt_seconds", "Round-trip time of the last probe", labels=PEER)
    loss = GaugeMetricFamily("wgtrack_peer_probe_loss_ratio", "Packet loss of the last probe (0-1)", labels=PEER)
    probes = CounterMetricFamily("wgtrack_peer_probes", "Echo requests sent through the tunnel", labels=PEER)
    replies = CounterMetricFamily("wgtrack_peer_probe_replies", "Echo replies received through the tunnel",
                                  labels=PEER)
    histogram = HistogramMetricFamily("wgtrack_peer_probe_rtt_seconds", "Round-trip times of the echo replies",
                                      labels=PEER)
    silent = GaugeMetricFamily("wgtrack_peer_probe_silent",
                               "1 when the probe target does not answer and handshakes judge the link", labels=PEER)
    reresolves = CounterMetricFamily("wgtrack_peer_reresolves", "Endpoint re-resolutions started", labels=PEER)
    changes = CounterMetricFamily("wgtrack_peer_endpoint_changes", "Endpoints applied by wgtrack", labels=PEER)
    roams = CounterMetricFamily("wgtrack_peer_roams", "Endpoint changes wgtrack did not make (the peer moved)",
                                labels=PEER)
    underlay = GaugeMetricFamily(
        "wgtrack_peer_underlay_up",
        "A down peer's host outside the tunnel: 1 answers (tunnel_only), 0 does not (host_unreachable)", labels=PEER)
    check_up = GaugeMetricFamily("wgtrack_peer_check_up", "1 when the service check through the tunnel succeeded",
                                 labels=[*PEER, "check"])
    check_rtt = GaugeMetricFamily("wgtrack_peer_check_rtt_seconds", "How long the last successful service check took",
                                  labels=[*PEER, "check"])
    degraded = GaugeMetricFamily("wgtrack_peer_degraded",
                                 "1 while the link is up:degraded, with its reason: loss, latency or mtu",
                                 labels=[*PEER, "reason"])
    path_mtu = GaugeMetricFamily("wgtrack_peer_path_mtu_bytes",
                                 "The largest inner packet the last path-MTU search saw pass", labels=PEER)
    keepalive = GaugeMetricFamily("wgtrack_peer_keepalive_seconds", "Persistent keepalive (0 = off)", labels=PEER)
    info = InfoMetricFamily("wgtrack_peer", "Peer facts: endpoint, allowed IPs, and the link (both ends' keys)",
                            labels=[*PEER, "endpoint", "allowed_ips", "link"])
    iface_info = InfoMetricFamily("wgtrack_interface", "Each interface's own public key and this host's name",
                                  labels=["interface", "public_key", "host"])
    iface_up = GaugeMetricFamily("wgtrack_interface_up", "1 for every interface present", labels=["interface"])
    iface_peers = GaugeMetricFamily("wgtrack_interface_peers", "Peers per interface by state",
                                    labels=["interface", "state"])
    iface_rx = CounterMetricFamily("wgtrack_interface_received_bytes", "Bytes received from all the interface's peers",
                                   labels=["interface"])
    iface_tx = CounterMetricFamily("wgtrack_interface_sent_bytes", "Bytes sent to all the interface's peers",
                                   labels=["interface"])
    # a group's label names are its friendly_json keys: samples of one family, with names of their own
    group_peers = GaugeMetricFamily("wgtrack_group_peers", "Peers per friendly_json group by state")
    group_rx = CounterMetricFamily("wgtrack_group_received_bytes", "Bytes received from a group's peers")
    group_tx = CounterMetricFamily("wgtrack_group_sent_bytes", "Bytes sent to a group's peers")
    for iface in snap.interfaces:
        iface_up.add_metric([iface.name], 1)
        iface_info.add_metric([iface.name, iface.public_key, snap.host], {})
        for totals in iface.all_totals():
            if not totals.labels:
                for name, count in totals.states:
                    iface_peers.add_metric([iface.name, name], count)
                iface_rx.add_metric([iface.name], totals.rx_bytes)
                iface_tx.add_metric([iface.name], totals.tx_bytes)
                continue
            names = ["interface", *(k for k, _ in totals.labels)]
            values = [iface.name, *(v for _, v in totals.labels)]
            for name, count in totals.states:
                group_peers.samples.append(_sample(group_peers, [*names, "state"], [*values, name], count))
            group_rx.samples.append(_sample(group_rx, names, values, totals.rx_bytes))
            group_tx.samples.append(_sample(group_tx, names, values, totals.tx_bytes))
        for peer in iface.peers:
            if not peer.exported:
                continue
            names, values = _compat_labels(peer)
            for family, value in ((sent, peer.tx_bytes), (received, peer.rx_bytes),
                                  (latest, peer.latest_handshake)):
                family.samples.append(_sample(family, names, values, value))
            if peer.handshake_age_s is not None:
                delay.samples.append(_sample(delay, names, values, peer.handshake_age_s))
            labels = _peer_labels(peer)
            up.add_metric(labels, int(peer.is_up))
            for name in STATES:
                state.add_metric([*labels, name], int(peer.status.value == name))
            since.add_metric(labels, round(peer.since_s(snap.time_ns / 1e9), 3))
            if peer.rtt_ms is not None:
                rtt.add_metric(labels, peer.rtt_ms / 1000)
            if peer.loss is not None:
                loss.add_metric(labels, peer.loss)
            if peer.quality is not None:
                q = peer.quality
                probes.add_metric(labels, q.probes)
                replies.add_metric(labels, q.replies)
                bounds = [repr(b) for b in BUCKETS_S] + ["+Inf"]
                histogram.add_metric(labels, list(zip(bounds, q.buckets, strict=True)), q.rtt_sum_s)
            silent.add_metric(labels, int(peer.probe_silent))
            reresolves.add_metric(labels, peer.reresolves)
            changes.add_metric(labels, peer.endpoint_changes)
            roams.add_metric(labels, peer.roams)
            for result in peer.checks:
                check_up.add_metric([*labels, result.check], int(result.ok))
                if result.ok and result.rtt_ms is not None:
                    check_rtt.add_metric([*labels, result.check], result.rtt_ms / 1000)
            if peer.diagnosis is not None:
                underlay.add_metric(labels, int(peer.diagnosis == "tunnel_only"))
            if peer.degraded is not None:
                degraded.add_metric([*labels, peer.degraded], 1)
            if peer.path_mtu is not None:
                path_mtu.add_metric(labels, peer.path_mtu)
            keepalive.add_metric(labels, peer.keepalive_s)
            info.add_metric(labels, {"endpoint": peer.endpoint or "", "allowed_ips": ",".join(peer.allowed_ips),
                                     "link": ",".join(sorted((peer.interface_key, peer.public_key)))})
    yield from (sent, received, latest, delay, up, state, since, rtt, loss, probes, replies, histogram, silent,
                reresolves, changes, roams,
                underlay, degraded, path_mtu,
                keepalive, check_up, check_rtt, info, iface_info, iface_up, iface_peers, iface_rx, iface_tx,
                group_peers, group_rx, group_tx)


def _sample(family: Metric, names: list[str], values: list[str], value: float):  # type: ignore[no-untyped-def]
    """A sample with this peer's own label set (friendly_json keys may differ per peer)."""
    from prometheus_client.samples import Sample

    suffix = "_total" if family.type == "counter" else ""
    return Sample(family.name + suffix, dict(zip(names, values, strict=True)), value, None, None)


class SnapshotCollector(Collector):
    """Serves whatever snapshot was published last."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot)
