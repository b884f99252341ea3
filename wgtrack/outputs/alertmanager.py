"""``[output:alertmanager]``: an alert per down peer (``WireGuardPeerDown``) and per degraded
one (``WireGuardPeerDegraded``), pushed to Alertmanager's v2 API, re-sent while it fires and
resolved when the peer recovers (or vanishes).

Stable labels (``alertname``, ``interface``, ``peer``, ``friendly_name``, ``instance``) let
Alertmanager group, route and silence. Sending happens in one background task with the
latest state; ``publish`` never waits for Alertmanager.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from wgtrack import __version__
from wgtrack.dump import interface_labels
from wgtrack.httpclient import post
from wgtrack.outputs.sender import Sender
from wgtrack.redact import redact_url
from wgtrack.retry import FailureRun
from wgtrack.schema import OutputSpec, nonempty, output_key, seconds, timeout_key, url_list
from wgtrack.snapshot import PeerView, Snapshot

if TYPE_CHECKING:
    from wgtrack.history.outbox import Outbox

log = logging.getLogger(__name__)

ALERTNAME = "WireGuardPeerDown"
DEGRADED_ALERTNAME = "WireGuardPeerDegraded"
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings:
    """``[output:alertmanager]``: alerts for down peers via Alertmanager's v2 API."""

    url: str = ""
    resend_interval_s: float = 60.0
    timeout_s: float = 5.0
    severity: str = "critical"
    degraded_severity: str = "warning"
    instance: str | None = None  # default: the host name

    @property
    def urls(self) -> tuple[str, ...]:
        """Every Alertmanager of the cluster: each gets every alert (they deduplicate)."""
        return tuple(u.strip() for u in self.url.split(",") if u.strip())


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                          "Z")


Payload = list[dict[str, Any]]


class Alertmanager(Sender[Payload]):
    """Keeps the set of firing alerts; sends it (plus fresh resolutions) when due."""

    what = "push"
    unit = "alert updates"

    def __init__(self, section: str, settings: AlertmanagerSettings) -> None:
        super().__init__(section, settings.urls[0], 1.0, MAX_BACKOFF_S)
        self._target = ", ".join(redact_url(u) for u in settings.urls)
        self._per_url = {u: FailureRun(log, f"{section} ({redact_url(u)})") for u in settings.urls}
        self.settings = settings
        self.instance = settings.instance or socket.gethostname()
        self.firing: dict[tuple[str, str, bool], dict[str, Any]] = {}  # by (interface, key, down)
        self._resolved: dict[tuple[str, str, bool], dict[str, Any]] = {}  # waiting to be sent
        self._last_sent = 0.0
        self._pending: Payload | None = None
        self._pending_resolved: list[tuple[str, str]] = []
        self._outbox: Outbox | None = None  # the history store's: the alerts outlive a restart
        self._kept: int | None = None  # the outbox id of the alerts as last kept

    def keep_in(self, outbox: Outbox, section: str) -> None:
        """Firing alerts and unsent resolutions are kept in the store (one item, replaced as
        they change): after a restart, a link that healed meanwhile is resolved explicitly."""
        self._outbox = outbox
        for item_id, text in outbox.take(section, 1):
            try:
                doc = json.loads(text)
                self.firing = {(i, k, bool(d)): alert for i, k, d, alert in doc["firing"]}
                self._resolved = {(i, k, bool(d)): alert for i, k, d, alert in doc["resolved"]}
                self._kept = item_id
            except (ValueError, KeyError, TypeError):  # not what this version keeps: start afresh
                outbox.done(item_id)
        if self.firing or self._resolved:
            log.info("%s: %d firing alert(s) and %d resolution(s) from before the restart", self.name,
                     len(self.firing), len(self._resolved))

    def _keep(self) -> None:
        if self._outbox is None:
            return
        if self._kept is not None:
            self._outbox.done(self._kept)
        self._kept = self._outbox.put(self.name, json.dumps({
            "firing": [[*key, alert] for key, alert in self.firing.items()],
            "resolved": [[*key, alert] for key, alert in self._resolved.items()]}))

    def take_over(self, old: object) -> None:
        if isinstance(old, Alertmanager):
            # Firing alerts and unsent resolutions live on: Alertmanager must hear them resolve.
            self.firing, self._resolved, self._last_sent = old.firing, old._resolved, old._last_sent
            self._kept = old._kept
            if old._pending is not None:
                self._pending = old._pending
                self._wake.set()

    def pending(self) -> int:
        return 0 if self._pending is None else len(self._pending)

    def _alert(self, peer: PeerView, starts: float) -> dict[str, Any]:
        name = peer.friendly_name or peer.public_key[:8]
        down = peer.status.is_down
        return {
            "labels": {"alertname": ALERTNAME if down else DEGRADED_ALERTNAME, **dict(interface_labels(peer.interface)),
                       "peer": peer.public_key, "friendly_name": peer.friendly_name or "", "instance": self.instance,
                       "severity": self.settings.severity if down else self.settings.degraded_severity},
            "annotations": {
                "summary": f"WireGuard peer {name} on {peer.interface} is " + (
                    "down" if down else f"degraded ({peer.degraded})"),
                "description": _description(peer, name, self.instance),
            },
            "startsAt": _iso(starts),
            "generatorURL": f"wgtrack://{self.instance}/{peer.interface}",
        }

    async def publish(self, snapshot: Snapshot) -> None:
        now = snapshot.time_ns / 1e9
        if not snapshot.wg_ok:
            return  # no news is not good news: keep firing alerts as they are until wg is readable
        # Keyed by alert too: a degraded link that goes down resolves one alert and fires the other.
        down: dict[tuple[str, str, bool], PeerView] = {
            (p.interface, p.public_key, p.status.is_down): p
            for i in snapshot.interfaces for p in i.peers if p.status.is_down or p.degraded is not None
        }
        changed = False
        for key, peer in down.items():
            if key not in self.firing:
                self.firing[key] = self._alert(peer, peer.since)
                changed = True
        for key in [k for k in self.firing if k not in down]:
            alert = self.firing.pop(key)
            self._resolved[key] = {**alert, "endsAt": _iso(now)}
            changed = True
        if changed:
            self._keep()
        if changed or (self.firing and now - self._last_sent >= self.settings.resend_interval_s):
            ends = _iso(now + 4 * self.settings.resend_interval_s)  # expires unless re-sent
            self._pending = [{**a, "endsAt": ends} for a in self.firing.values()] + list(self._resolved.values())
            self._last_sent = now
            self._wake.set()

    def _next(self) -> Payload | None:
        return self._pending

    async def _deliver(self, payload: Payload) -> str | None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"wgtrack/{__version__}"}
        # Every member of an HA cluster gets every alert; the cluster deduplicates notifications.
        # Delivered once one accepted it: a member that was down hears it at the next re-send.
        results = await asyncio.gather(*(post(u.rstrip("/") + "/api/v2/alerts", body, headers, self.settings.timeout_s)
                                         for u in self.settings.urls))
        for url, result in zip(self.settings.urls, results, strict=True):
            if result.ok:
                self._per_url[url].recovered("accepting again")
            elif len(results) > 1:
                self._per_url[url].failed(result.error or "", "push failed")
        if any(r.ok for r in results):
            return None
        return "; ".join(f"{redact_url(u)}: {r.error}" for u, r in zip(self.settings.urls, results, strict=True))

    def _delivered(self, payload: Payload) -> None:
        sent = {id(alert) for alert in payload}  # resolutions go out as the very objects kept here
        done = [k for k, alert in self._resolved.items() if id(alert) in sent]
        for key in done:
            del self._resolved[key]
        if done:
            self._keep()
        if self._pending is payload:
            self._pending = None


def _description(peer: PeerView, name: str, instance: str) -> str:
    where = f"the link to {name} ({peer.public_key}) on {peer.interface}"
    if peer.status.is_down:
        age = peer.handshake_age_s if peer.handshake_age_s is not None else "never"
        return f"wgtrack on {instance} sees no life on {where}: state {peer.status.value}, handshake age {age} s."
    q = peer.quality
    figures = []
    if q is not None and q.loss is not None:
        figures.append(f"loss {q.loss:.1%} over 5 min")
    if q is not None and q.p50_ms is not None:
        figures.append(f"median RTT {q.p50_ms:.1f} ms")
    if peer.path_mtu is not None:
        figures.append(f"path MTU {peer.path_mtu}")
    measured = ", ".join(figures) or "no figures"
    return f"wgtrack on {instance} finds {where} up but degraded by {peer.degraded}: {measured}."


def _with_instance(settings: AlertmanagerSettings) -> AlertmanagerSettings:
    return settings if settings.instance else replace(settings, instance=socket.gethostname())


SCOPE = "output:alertmanager"
SPEC = OutputSpec(SCOPE, AlertmanagerSettings, (
    output_key("url", "url", url_list, SCOPE,
               "Alertmanager's base URL; several, comma-separated, for an HA cluster (each gets every alert)",
               secret=True),
    output_key("resend_interval", "resend_interval_s", seconds(1, 86400), SCOPE,
               "seconds between re-sends of firing alerts"),
    timeout_key(SCOPE),
    output_key("severity", "severity", nonempty, SCOPE, "the down alerts' severity label"),
    output_key("degraded_severity", "degraded_severity", nonempty, SCOPE, "the degraded alerts' severity label"),
    output_key("instance", "instance", nonempty, SCOPE, "the alerts' instance label (default: host name)"),
), Alertmanager, required=("url",), complete=_with_instance)
