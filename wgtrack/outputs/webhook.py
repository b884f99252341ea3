"""``[output:webhook]`` (several allowed: ``[output:webhook:<name>]``): events as HTTP POSTs.

A bounded queue (oldest dropped and counted when full) feeds one sender task that retries
with exponential back-off; the POST itself runs in a worker thread under a timeout. Nothing
here ever delays a cycle: ``publish`` only enqueues. URLs are logged without path and query,
and neither headers nor the HMAC secret are ever logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import logging
from typing import Any

from wgtrack import __version__
from wgtrack.config import WebhookSettings
from wgtrack.events import Event
from wgtrack.httppost import post
from wgtrack.outputs.sender import Sender
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


class Webhook(Sender):
    """One receiver."""

    def __init__(self, name: str, settings: WebhookSettings) -> None:
        super().__init__(settings.url)
        self.name = f"output:{name}"
        self.settings = settings
        self.queue: collections.deque[Event] = collections.deque(maxlen=settings.queue_size)
        self.dropped = 0
        self.delivered = 0

    async def publish(self, snapshot: Snapshot) -> None:
        for event in snapshot.events:
            if self.settings.events and event.kind not in self.settings.events:
                continue
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1  # the deque drops the oldest on append
                log.warning("%s (%s): queue full, dropped the oldest event (%d dropped so far)",
                            self.name, self._target, self.dropped)
            self.queue.append(event)
        if self.queue:
            self._wake.set()

    async def close(self) -> None:
        await self._stop(self._drain_once)  # tracker_stopping gets its chance

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(body_for(event, self.settings.format)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": f"wgtrack/{__version__}",
                   **self.settings.headers}
        if self.settings.secret:
            headers["X-Wgtrack-Signature"] = signature(self.settings.secret, body)
        return body, headers

    async def _drain_once(self) -> None:
        while self.queue:
            event = self.queue[0]
            body, headers = self._request(event)
            result = await asyncio.to_thread(post, self.settings.url, body, headers, self.settings.timeout_s)
            if not result.ok:
                return
            if self.queue and self.queue[0] is event:
                self.queue.popleft()
            self.delivered += 1

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            event = self.queue[0]
            body, headers = self._request(event)
            result = await asyncio.to_thread(post, self.settings.url, body, headers, self.settings.timeout_s)
            if result.ok:
                if failures:
                    log.info("%s (%s): delivering again after %d failed attempts", self.name, self._target, failures)
                failures = 0
                if self.queue and self.queue[0] is event:
                    self.queue.popleft()
                self.delivered += 1
                continue
            failures += 1
            if failures == 1:
                log.warning("%s (%s): delivery failed, retrying with back-off: %s",
                            self.name, self._target, result.error)
            if self.settings.retries and failures > self.settings.retries:
                self.dropped += 1
                log.error("%s (%s): gave up on a %s event after %d attempts", self.name, self._target,
                          event.kind, failures)
                if self.queue and self.queue[0] is event:
                    self.queue.popleft()
                failures = 0
                continue
            delay = min(MAX_BACKOFF_S, self.settings.backoff_s * 2 ** (failures - 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(delay), delay)
