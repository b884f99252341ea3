"""``[output:webhook]`` (several allowed: ``[output:webhook:<name>]``): events as HTTP POSTs.

A bounded queue (oldest dropped and counted when full) feeds one sender task that retries
with a capped exponential back-off (``sender.Sender``); each POST has one deadline for the
whole exchange. Nothing here ever delays a cycle: ``publish`` only enqueues. URLs are logged without path and query,
and neither headers nor the HMAC secret are ever logged.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wgtrack import __version__
from wgtrack.events import Event
from wgtrack.httpclient import post
from wgtrack.outputs.sender import Sender
from wgtrack.retry import FailureRun
from wgtrack.schema import (
    OutputSpec,
    PrefixKeys,
    choice,
    event_kinds,
    header_value,
    http_url,
    int_between,
    nonempty,
    output_key,
    seconds,
    timeout_key,
)
from wgtrack.snapshot import Snapshot

if TYPE_CHECKING:
    from wgtrack.history.outbox import Outbox

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[output:webhook]`` / ``[output:webhook:<name>]``: events POSTed to a URL."""

    url: str = ""
    events: frozenset[str] = frozenset()  # empty: every kind
    format: str = "json"  # json | slack | discord | teams
    timeout_s: float = 5.0
    retries: int = 0  # 0: retry until delivered (or pushed out of the queue)
    backoff_s: float = 1.0  # first retry delay; doubles, capped at 60 s
    queue_size: int = 1000
    secret: str | None = None  # HMAC-SHA256 key for X-Wgtrack-Signature
    headers: Mapping[str, str] = field(default_factory=dict)


def body_for(event: Event, fmt: str) -> dict[str, Any]:
    """The JSON body for one event in the receiver's format."""
    if fmt == "slack":
        return {"text": event.message}
    if fmt == "discord":
        return {"content": event.message[:2000]}
    if fmt == "teams":
        return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
                "summary": event.message[:200], "text": event.message}
    return event.to_dict()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook(Sender[Event]):
    """One receiver."""

    unit = "events"

    def __init__(self, section: str, settings: WebhookSettings) -> None:
        super().__init__(section, settings.url, settings.backoff_s, MAX_BACKOFF_S)
        self.settings = settings
        self.queue: collections.deque[Event] = collections.deque(maxlen=settings.queue_size)
        self.dropped = 0
        self._drops = FailureRun(log, f"{self.name} ({self._target})")
        self.delivered = 0
        self._outbox: Outbox | None = None  # the history store's, where queued events outlive a restart
        self._ids: dict[int, int] = {}  # id(event) -> its outbox id

    async def publish(self, snapshot: Snapshot) -> None:
        for event in snapshot.events:
            if self.settings.events and event.kind not in self.settings.events:
                continue
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1  # the deque drops the oldest on append
                self._drops.failed(f"{self.dropped} dropped so far", "queue full, dropping the oldest events")
            else:
                self._drops.recovered("queue has room again")
            self._append(event, self._outbox.put(self.name, json.dumps(dataclasses.asdict(event)))
                         if self._outbox else None)
        if self.queue:
            self._wake.set()

    def _append(self, event: Event, item_id: int | None) -> None:
        if len(self.queue) == self.queue.maxlen:
            self._forget(self.queue[0])  # the deque drops it
        self.queue.append(event)
        if item_id is not None:
            self._ids[id(event)] = item_id

    def _forget(self, event: Event) -> None:
        """The event is delivered or dropped: the store's copy goes too."""
        item_id = self._ids.pop(id(event), None)
        if item_id is not None and self._outbox is not None:
            self._outbox.done(item_id)

    def keep_in(self, outbox: Outbox, section: str) -> None:
        self._outbox = outbox
        for item_id, text in outbox.take(section, self.settings.queue_size):
            try:
                event = Event(**json.loads(text))
            except (ValueError, TypeError):  # not an event this version reads
                outbox.done(item_id)
                continue
            self._append(event, item_id)
        if self.queue:
            log.info("%s: %d undelivered event(s) from before the restart queued", self.name, len(self.queue))
            self._wake.set()

    def take_over(self, old: object) -> None:
        if isinstance(old, Webhook):
            for event in old.queue:  # in order; a smaller queue_size keeps the newest
                self._append(event, old._ids.get(id(event)))
            if self.queue:
                self._wake.set()

    def pending(self) -> int:
        return len(self.queue)

    def _next(self) -> Event | None:
        return self.queue[0] if self.queue else None

    def _delivered(self, event: Event) -> None:
        if self.queue and self.queue[0] is event:
            self.queue.popleft()
        self._forget(event)
        self.delivered += 1

    def _give_up(self, event: Event, failures: int) -> bool:
        if not self.settings.retries or failures <= self.settings.retries:
            return False
        self.dropped += 1
        log.error("%s (%s): gave up on a %s event after %d attempts", self.name, self._target, event.kind, failures)
        if self.queue and self.queue[0] is event:
            self.queue.popleft()
        self._forget(event)
        return True

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(body_for(event, self.settings.format)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"wgtrack/{__version__}",
                   **self.settings.headers}
        if self.settings.secret:
            headers["X-Wgtrack-Signature"] = signature(self.settings.secret, body)
        return body, headers

    async def _deliver(self, event: Event) -> str | None:
        body, headers = self._request(event)
        return (await post(self.settings.url, body, headers, self.settings.timeout_s)).error


SCOPE = "output:webhook"
SPEC = OutputSpec(SCOPE, WebhookSettings, (
    output_key("url", "url", http_url, SCOPE, "the full URL to POST to", secret=True),
    output_key("events", "events", event_kinds, SCOPE, "event kinds to send (default: all)"),
    output_key("format", "format", choice("json", "slack", "discord", "teams"), SCOPE, "body format"),
    timeout_key(SCOPE),
    output_key("retries", "retries", int_between(0, 1_000_000), SCOPE,
               "attempts per event before it is dropped; 0 = until delivered"),
    output_key("backoff", "backoff_s", seconds(0.01, 3600), SCOPE, "first retry delay, doubling"),
    output_key("queue_size", "queue_size", int_between(1, 1_000_000, "the queue lives in memory"), SCOPE,
               "events kept while the receiver is unreachable; the oldest are dropped beyond"),
    output_key("secret", "secret", nonempty, SCOPE,
               "HMAC-SHA256 key: X-Wgtrack-Signature: sha256=<hex> over the body", secret=True),
), Webhook, required=("url",), repeats=True,
    prefixed=PrefixKeys("header_", "headers", header_value, lambda rest: rest.replace("_", "-")))
