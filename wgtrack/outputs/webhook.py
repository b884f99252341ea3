"""``[output:webhook]`` (several allowed: ``[output:webhook:<name>]``): events as HTTP POSTs.

A bounded queue (oldest dropped and counted when full) feeds one sender task that retries
with a capped exponential back-off (``sender.Sender``); each POST has one deadline for the
whole exchange. Nothing here ever delays a cycle: ``publish`` only enqueues. URLs are logged without path and query,
and neither headers nor the HMAC secret are ever logged.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
from typing import Any

from wgtrack import __version__
from wgtrack.config import WebhookSettings
from wgtrack.events import Event
from wgtrack.httpclient import post
from wgtrack.outputs.sender import Sender
from wgtrack.retry import FailureRun
from wgtrack.snapshot import Snapshot

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0


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

    async def publish(self, snapshot: Snapshot) -> None:
        for event in snapshot.events:
            if self.settings.events and event.kind not in self.settings.events:
                continue
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1  # the deque drops the oldest on append
                self._drops.failed(f"{self.dropped} dropped so far", "queue full, dropping the oldest events")
            else:
                self._drops.recovered("queue has room again")
            self.queue.append(event)
        if self.queue:
            self._wake.set()

    def take_over(self, old: object) -> None:
        if isinstance(old, Webhook):
            self.queue.extend(old.queue)  # in order; a smaller queue_size keeps the newest
            if self.queue:
                self._wake.set()

    def pending(self) -> int:
        return len(self.queue)

    def _next(self) -> Event | None:
        return self.queue[0] if self.queue else None

    def _delivered(self, event: Event) -> None:
        if self.queue and self.queue[0] is event:
            self.queue.popleft()
        self.delivered += 1

    def _give_up(self, event: Event, failures: int) -> bool:
        if not self.settings.retries or failures <= self.settings.retries:
            return False
        self.dropped += 1
        log.error("%s (%s): gave up on a %s event after %d attempts", self.name, self._target, event.kind, failures)
        if self.queue and self.queue[0] is event:
            self.queue.popleft()
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
