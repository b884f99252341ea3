"""What operators hear: the machines' actions turned into events (for webhooks, Alertmanager,
InfluxDB) and log lines, one handler per kind of action; interfaces that come and go; the
tracker's own start and stop."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterator

from wgtrack import __version__, link
from wgtrack.checks import CheckResult
from wgtrack.events import NOTHING, Event
from wgtrack.history.journal import Journal
from wgtrack.model import Dump, DumpChange
from wgtrack.peers import PeerId, TrackedPeer

log = logging.getLogger("wgtrack.tracker")  # the log lines operators know keep their logger


def _count_peers(count: int) -> str:
    return f"{count} peer" if count == 1 else f"{count} peers"


class EventLog:
    """The events since the last snapshot, in order."""

    def __init__(self, name_of: Callable[[PeerId], str], friendly: Callable[[PeerId], str | None],
                 state_of: Callable[[PeerId], link.LinkState | None], epoch: Callable[[float], float]) -> None:
        self.name_of, self._friendly, self._state_of, self.epoch = name_of, friendly, state_of, epoch
        self._events: list[Event] = []
        self.journal: Journal | None = None  # the history store's, when it is on
        self._wall_of = (float("nan"), 0.0)  # the last time noted, and its wall-clock time

    def note(self, pid: PeerId, tracked: TrackedPeer, now: float, old: str | None, new: str, reason: str) -> None:
        """A status change for the history store (every one, events or not)."""
        if self.journal is not None:
            if now != self._wall_of[0]:  # a first cycle notes every peer at one time: one float for all
                self._wall_of = (now, self.epoch(now))
            self.journal.changed(self._wall_of[1], old, reason, pid, self._friendly(pid), new, tracked.state,
                                 (tracked.rx_base, tracked.tx_base, tracked.rx, tracked.tx))

    def removed(self, pid: PeerId, tracked: TrackedPeer, now: float, announce: bool) -> None:
        """A peer gone from WireGuard: logged, a peer_removed event when ``announce`` (its
        interface is still there), and noted."""
        log.info("%s: gone from WireGuard, no longer tracked", self.name_of(pid))
        if announce:
            self.peer_event(pid, "peer_removed", now, "gone from WireGuard, no longer tracked")
        status = tracked.state.status
        self.note(pid, tracked, now, status.value if status else None, "removed", "gone from WireGuard")

    def drain(self) -> tuple[Event, ...]:
        """The events since the last call (they go into the next snapshot)."""
        events, self._events = tuple(self._events), []
        return events

    def tracker_event(self, kind: str, wall: float, message: str) -> None:
        self._events.append(Event(kind, wall, message, details={"version": __version__}))

    def interfaces_came(self, dump: Dump | DumpChange, came: list[str], wall: float) -> None:
        """An interface that appears is one event with the count of peers it came with (at start
        too): a peer_added each would be a flood on a big hub's every restart. Peers come and go
        one by one only on an interface already tracked."""
        if not came:
            return
        listed_on = Counter(record.interface for record in
                            (dump.changed if isinstance(dump, DumpChange) else
                             (r for iface in dump.interfaces if iface.name in came for r in iface.peers)))
        for ifname in came:
            count = listed_on[ifname]
            self._events.append(Event("interface_up", wall, f"interface {ifname} appeared with "
                                      f"{_count_peers(count)}", ifname, details={"peers": count}))

    def interface_gone(self, ifname: str, count: int, wall: float) -> None:
        self._events.append(Event("interface_down", wall, f"interface {ifname} is gone with "
                                  f"{_count_peers(count)}", ifname, details={"peers": count}))

    def peer_event(self, pid: PeerId, kind: str, now: float, message: str, *, old: str | None = None,
                   new: str | None = None, details: dict[str, object] | None = None,
                   alike: dict[tuple[object, ...], dict[str, object]] | None = None) -> None:
        """One event of a peer. With ``alike``, a batch's events share their evidence where it
        is the same (events are never changed once made; see ``Event``)."""
        state = self._state_of(pid)
        evidence: dict[str, object] = NOTHING
        wall = self.epoch(now)
        if state is not None:
            age = int(max(0.0, wall - state.latest_handshake)) if state.latest_handshake else None
            evidence = {"handshake_age_s": age,
                        "probe_rtt_ms": state.rtt_ms, "probe_loss": state.loss,
                        "probe_failures": state.probe_failures}
            if alike is not None:
                evidence = alike.setdefault((age, state.rtt_ms, state.loss, state.probe_failures), evidence)
        self._events.append(Event(kind, wall, f"{self.name_of(pid)}: {message}", pid[0], pid[1],
                                  self._friendly(pid), old, new, evidence, dict(details) if details else NOTHING))

    def announce_added(self, new: list[PeerId], at: int, now: float, tracked: Callable[[PeerId], bool],
                       on_tracked_interface: Callable[[PeerId], bool], part_size: int) -> Iterator[None]:
        """The peer_added events of a dump's new peers (on interfaces tracked before it), put
        where the dump's events begin; every new peer is logged. Made after the stepping,
        together: built in between the peers' own lasting objects they would leave the
        process's memory in holes. They share their evidence where it is alike."""
        tail, self._events = self._events[at:], self._events[:at]
        alike: dict[tuple[object, ...], dict[str, object]] = {}
        for made, pid in enumerate(new, 1):
            if tracked(pid):
                if log.isEnabledFor(logging.INFO):
                    log.info("%s: now tracked", self.name_of(pid))
                if on_tracked_interface(pid):
                    self.peer_event(pid, "peer_added", now, "now tracked", alike=alike)
            if made % part_size == 0:
                yield  # 50,000 of them take some 200 ms: the loop gets its turns
        self._events += tail

    def checks_ran(self, pid: PeerId, before: tuple[CheckResult, ...], results: tuple[CheckResult, ...]) -> None:
        """One log line per check that changed, not one per run."""
        was = {r.check: r.ok for r in before}
        for result in results:
            if not result.ok and was.get(result.check, True):
                log.info("%s: check %s failed: %s", self.name_of(pid), result.check, result.error)
            elif result.ok and was.get(result.check) is False:
                log.info("%s: check %s answers again", self.name_of(pid), result.check)

    def mark(self) -> int:
        """Where the events of what follows begin (see ``announce_added``)."""
        return len(self._events)

    def said(self, pid: PeerId, tracked: TrackedPeer, actions: list[link.Action], now: float) -> int:
        """Log and announce what a step of one peer decided; returns the state changes and
        roams among it (the daemon publishes between cycles when they move)."""
        return sum(_said(action, self, pid, tracked, now) for action in actions)


@functools.singledispatch
def _said(action: object, events: EventLog, pid: PeerId, tracked: TrackedPeer, now: float) -> int:
    """What one action of a step means to operators (effects alone mean nothing to them);
    returns 1 for a state change or a roam."""
    return 0


_WHAT = {"peer_down": "down", "peer_up": "up again", "peer_degraded": "degraded", "peer_recovered": "recovered"}


@_said.register
def _changed(action: link.Changed, events: EventLog, pid: PeerId, tracked: TrackedPeer,
             now: float) -> int:
    old = action.old.value if action.old else "new"
    log.info("%s: %s -> %s (%s)", events.name_of(pid), old, action.new.value, action.reason)
    events.note(pid, tracked, now, action.old.value if action.old else None, action.new.value, action.reason)
    if action.event is not None:
        what = _WHAT[action.event]
        events.peer_event(pid, action.event, now, f"{what} ({action.reason})", old=old,
                          new=action.new.value, details={"reason": action.reason, **dict(action.details)})
    return 1


@_said.register
def _resolve(action: link.Resolve, events: EventLog, pid: PeerId, tracked: TrackedPeer,
             now: float) -> int:
    tracked.reresolves += 1
    return 0


@_said.register
def _endpoint_changed(action: link.EndpointChanged, events: EventLog, pid: PeerId, tracked: TrackedPeer,
                      now: float) -> int:
    tracked.endpoint_changes += 1
    log.info("%s: endpoint %s -> %s", events.name_of(pid), action.old or "(none)", action.new)
    if events.journal is not None:
        events.journal.endpoint(events.epoch(now), pid[0], pid[1], action.old, action.new, "set")
    events.peer_event(pid, "endpoint_changed", now, f"endpoint {action.old or '(none)'} -> {action.new}",
                      details={"old_endpoint": action.old, "new_endpoint": action.new})
    return 0


@_said.register
def _roamed(action: link.Roamed, events: EventLog, pid: PeerId, tracked: TrackedPeer,
            now: float) -> int:
    tracked.roams += 1
    log.info("%s: roamed %s -> %s", events.name_of(pid), action.old, action.new)
    if events.journal is not None:
        events.journal.endpoint(events.epoch(now), pid[0], pid[1], action.old, action.new, "roam")
    events.peer_event(pid, "peer_roamed", now, f"roamed {action.old} -> {action.new}",
                      details={"old_endpoint": action.old, "new_endpoint": action.new})
    return 1


@_said.register
def _diagnosed(action: link.Diagnosed, events: EventLog, pid: PeerId, tracked: TrackedPeer,
               now: float) -> int:
    what = ("the host answers outside the tunnel, the tunnel does not: keys, a firewall on the UDP "
            "port or a stale endpoint" if action.cause == "tunnel_only" else
            "the host does not answer outside the tunnel either")
    log.warning("%s: likely cause %s: %s (%s)", events.name_of(pid), action.cause, what, action.address)
    events.peer_event(pid, "peer_diagnosed", now, f"likely cause {action.cause}: {what}",
                      details={"cause": action.cause, "address": action.address})
    return 0


@_said.register
def _target_verdict(action: link.TargetVerdict, events: EventLog, pid: PeerId, tracked: TrackedPeer,
                    now: float) -> int:
    if action.verdict is link.Target.SILENT:
        log.warning("%s: probe target %s is silent: %s; judging the link by handshakes until it "
                    "answers", events.name_of(pid), action.target, action.reason)
    else:
        log.info("%s: probe target %s answers: %s", events.name_of(pid), action.target, action.reason)
    return 0


@_said.register
def _resolve_failed(action: link.ResolveFailed, events: EventLog, pid: PeerId, tracked: TrackedPeer,
                    now: float) -> int:
    log.warning("%s: re-resolution failed: %s", events.name_of(pid), action.reason)
    events.peer_event(pid, "reresolve_failed", now, f"re-resolution failed: {action.reason}",
                      details={"reason": action.reason})
    return 0
