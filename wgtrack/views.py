"""The peers' views for the outputs, made again only for peers that changed: a peer stepped
since the last snapshot, or with a handshake age to show. An unchanged peer's view, and an
interface none of whose views changed, are the very same objects as before (outputs cache by
them)."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING

from wgtrack import link
from wgtrack.model import InterfaceRecord, PeerRecord, is_ip_literal, split_endpoint
from wgtrack.snapshot import CycleFacts, InterfaceView, PeerView, Snapshot, Totals, tally

if TYPE_CHECKING:
    from wgtrack.config import TrackSettings
    from wgtrack.events import Event
    from wgtrack.peers import CounterMemory, PeerId, TrackedPeer
    from wgtrack.quality import QualityView
    from wgtrack.wgconf import PeerConf

# Peers looked at per part of building a snapshot: sized for a big hub's first cycles (a first
# view 20 µs at 50,000 peers), so that no part holds the event loop for long; with every peer
# probed each second (all views new each cycle) parts of 1,000 held it for 60 ms.
SNAPSHOT_PART = 500


def _same_view(a: link.LinkState, b: link.LinkState) -> bool:
    """Whether two states show the same in a PeerView (a probe's time, say, is not shown)."""
    return (a.status is b.status and a.since == b.since and a.rtt_ms == b.rtt_ms and a.loss == b.loss
            and a.diagnosis == b.diagnosis and a.degraded == b.degraded and a.target is b.target
            and a.quiet_cycles == b.quiet_cycles
            and a.next_resolve_at == b.next_resolve_at and a.backoff_cycles == b.backoff_cycles)


def endpoint_host(settings: TrackSettings, conf: PeerConf | None) -> str | None:
    """The hostname behind the endpoint, for operators: the setting, else the wg config's."""
    if settings.endpoint:
        host = split_endpoint(settings.endpoint)[0]
        return None if is_ip_literal(host) else host
    return conf.endpoint_host if conf else None


def _mtu_note(tracked: TrackedPeer, state: link.LinkState) -> str | None:
    """Why a peer has no path-MTU verdict: its last search's reason, or a silent target."""
    if tracked.mtu_note is None and state.probe_silent:
        return "no path-MTU search: the probe target does not answer"
    return tracked.mtu_note


class ViewCache:
    """Each peer's current view per interface, and which peers must be looked at again."""

    def __init__(self, peers: Mapping[PeerId, TrackedPeer], settings: Callable[[PeerId], TrackSettings],
                 counters: CounterMemory) -> None:
        self._peers, self._settings, self._counters = peers, settings, counters
        self.fresh: dict[PeerId, None] = {}  # stepped since the last snapshot (a dict: in dump order)
        self.aged: set[PeerId] = set()  # a handshake age to show, which time alone moves
        self._shown: dict[str, dict[str, PeerView]] = {}  # per interface, each peer's current view
        self._shown_interfaces: dict[str, InterfaceView] = {}  # the last snapshot's, reused when unchanged
        self._last_epoch = (math.nan, math.nan, 0.0)  # see _epoch
        self.wall_offset = 0.0  # epoch minus monotonic, from the last dump

    def forget(self) -> None:
        """Settings or wg configs changed: names, hostnames and schedules in the views may too."""
        for tracked in self._peers.values():
            tracked.view = tracked.view_state = None
        self.fresh.update(dict.fromkeys(self._peers))
        self._shown_interfaces.clear()

    def drop_interface(self, ifname: str) -> None:
        self._shown.pop(ifname, None)
        self._shown_interfaces.pop(ifname, None)

    def interfaces_in_parts(self, interfaces: Sequence[InterfaceRecord], confs: Mapping[str, Mapping[str, PeerConf]],
                            wall: int, cycle_time_s: float,
                            part_size: int = SNAPSHOT_PART) -> Generator[None, None, tuple[InterfaceView, ...]]:
        """Every interface's view, yielding after every ``part_size`` peers looked at."""
        made: list[InterfaceView] = []
        look, self.fresh = self.fresh, {}
        look.update(dict.fromkeys(self.aged))
        by_interface: dict[str, list[PeerId]] = {}
        for pid in look:
            by_interface.setdefault(pid[0], []).append(pid)
        looked = 0
        for iface in interfaces:
            shown = self._shown.setdefault(iface.name, {})
            confs_here = confs.get(iface.name, {})
            changed = False
            for pid in by_interface.get(iface.name, ()):
                tracked = self._peers.get(pid)
                if tracked is None:
                    changed = shown.pop(pid[1], None) is not None or changed
                else:
                    view = self._view(pid, tracked, confs_here, iface.public_key, wall, cycle_time_s)
                    if shown.get(pid[1]) is not view:
                        shown[pid[1]] = view
                        changed = True
                looked += 1
                if looked % part_size == 0:
                    yield
            before = self._shown_interfaces.get(iface.name)
            if before is not None and not changed and before.listen_port == iface.listen_port \
                    and before.public_key == iface.public_key:
                made.append(before)
                continue
            views = tuple(shown.values())
            view_of_interface = InterfaceView(iface.name, iface.public_key, iface.listen_port, views,
                                              self._totals(iface.name, views))
            self._shown_interfaces[iface.name] = view_of_interface
            made.append(view_of_interface)
        return tuple(made)

    def snapshot_in_parts(self, interfaces: Sequence[InterfaceRecord], confs: Mapping[str, Mapping[str, PeerConf]],
                          facts: CycleFacts, cycle_time_s: float, events: Callable[[], tuple[Event, ...]],
                          host: str) -> Generator[None, None, Snapshot]:
        """The snapshot of ``interfaces`` (none when wg could not be read), in parts; its
        events are taken from ``events`` when it is made."""
        views: tuple[InterfaceView, ...] = ()
        if facts.wg_error is None:
            views = yield from self.interfaces_in_parts(interfaces, confs, facts.time_ns // 1_000_000_000,
                                                        cycle_time_s)
        return Snapshot(time_ns=facts.time_ns, cycle=facts.cycle, wg_ok=facts.wg_error is None,
                        wg_error=facts.wg_error, interfaces=views, cycle_duration_s=facts.cycle_duration_s,
                        started_ns=facts.started_ns, loop_lag_ms=facts.loop_lag_ms,
                        last_success_ns=facts.last_success_ns, errors=facts.errors, events=events(),
                        cycle_time_s=cycle_time_s, stopped=facts.stopped, host=host)

    def _totals(self, ifname: str, views: Sequence[PeerView]) -> tuple[Totals, ...]:
        """Peers by state and bytes, for the interface and each friendly_json group on it,
        with the bytes of the peers that went away."""
        return tally(views, lambda labels: self._counters.departed(ifname, labels))

    def _epoch(self, since: float) -> float:
        """A state's monotonic ``since`` as epoch seconds; the same float object for the same
        time (the peers a dump moved share it: a float each is 24 bytes a peer on a big hub)."""
        last = self._last_epoch
        if last[0] == since and last[1] == self.wall_offset:
            return last[2]
        value = round(since + self.wall_offset, 3)
        self._last_epoch = (since, self.wall_offset, value)
        return value

    def _unchanged(self, tracked: TrackedPeer, record: PeerRecord, age: int | None,
                   quality: QualityView | None) -> PeerView | None:
        """The peer's last view, if nothing it shows changed (a down peer's probe times are no
        part of it). Checks by equality: a view's may be an equal tuple of another view's (its
        shared part)."""
        view, made_of, state = tracked.view, tracked.view_state, tracked.state
        if view is not None and made_of is not None and view.record is record \
                and view.checks == tracked.checks and view.handshake_age_s == age and view.quality is quality \
                and (made_of is state or _same_view(made_of, state)) \
                and (view.reresolves, view.endpoint_changes, view.roams, view.rx_bytes, view.tx_bytes,
                     view.path_mtu, view.mtu_note) == \
                (tracked.reresolves, tracked.endpoint_changes, tracked.roams, tracked.rx_total, tracked.tx_total,
                 tracked.path_mtu, _mtu_note(tracked, state)):
            tracked.view_state = state
            return view
        return None

    def _view(self, pid: PeerId, tracked: TrackedPeer, confs: Mapping[str, PeerConf], interface_key: str,
              wall: int, cycle_time_s: float) -> PeerView:
        record = tracked.seen or tracked.record
        assert record is not None, "a tracked peer has been sampled"
        hs = record.latest_handshake
        age = max(0, wall - hs) if hs else None
        quality = tracked.quality.summary(wall) if tracked.quality else None
        kept = self._unchanged(tracked, record, age, quality)
        if kept is not None:
            return kept
        state = tracked.state
        settings = self._settings(pid)
        conf = confs.get(pid[1])
        cycles = link.cycles_to_next_resolve(state, settings)
        view = tracked.view = PeerView(
            interface=pid[0],
            public_key=pid[1],
            friendly_name=conf.friendly_name if conf else None,
            endpoint=record.endpoint,
            allowed_ips=record.allowed_ips,
            latest_handshake=record.latest_handshake,
            handshake_age_s=age,
            rx_bytes=tracked.rx_total,
            tx_bytes=tracked.tx_total,
            target=state.target._value_,
            counter_base=(tracked.rx_base, tracked.tx_base) if tracked.rx_base or tracked.tx_base else (0, 0),
            keepalive_s=record.keepalive_s,
            status=state.status or link.Status.IDLE,
            since=self._epoch(state.since),
            rtt_ms=state.rtt_ms,
            loss=state.loss,
            reresolves=tracked.reresolves,
            endpoint_changes=tracked.endpoint_changes,
            roams=tracked.roams,
            diagnosis=state.diagnosis,
            checks=tracked.checks,
            friendly_labels=tuple(sorted(conf.friendly_json.items())) if conf else (),
            next_reresolve_s=None if cycles is None else cycles * cycle_time_s,
            probe_silent=state.probe_silent,
            interface_key=interface_key,
            endpoint_host=endpoint_host(settings, conf),
            exported=settings.per_peer_metrics,
            quality=quality,
            degraded=state.degraded,
            path_mtu=tracked.path_mtu,
            mtu_note=_mtu_note(tracked, state),
            record=record,
        )
        tracked.view_state = state
        return view
