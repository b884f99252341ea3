"""Webhooks against a real HTTP receiver on loopback: delivery, signature, formats, a down,
failing or slow receiver, the queue bound, and secrets kept out of the logs."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import time

import pytest

from tests.receiver import Receiver
from tests.servers import free_port
from tests.snapshots import snapshot
from wgtrack.events import Event
from wgtrack.outputs.webhook import Webhook, WebhookSettings


def events(*kinds: str) -> object:
    snap = snapshot()
    evs = tuple(Event(k, 1_800_000_000.0 + i, f"wg0/alice: {k}", "wg0", "A" * 43 + "=", "alice")
                for i, k in enumerate(kinds))
    return dataclasses.replace(snap, events=evs)


async def run(hook: Webhook, *snaps: object, settle: float = 0.0) -> float:
    await hook.start()
    started = time.monotonic()
    for snap in snaps:
        await hook.publish(snap)  # type: ignore[arg-type]
    took = time.monotonic() - started
    await asyncio.sleep(settle)
    return took


def test_delivers_signed_json_with_custom_headers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = Receiver()
    try:
        hook = Webhook("output:webhook:ops", WebhookSettings(url=receiver.url, secret="s3cr3t",
                                                      headers={"authorization": "Bearer T0KEN"}))

        async def go() -> None:
            await run(hook, events("peer_down", "peer_up"))
            await asyncio.to_thread(receiver.wait_for, 2)
            await hook.close()

        asyncio.run(go())
        (h1, b1), _ = receiver.requests
        assert [b["kind"] for b in receiver.bodies()] == ["peer_down", "peer_up"]
        assert h1["x-wgtrack-signature"] == "sha256=" + hmac.new(b"s3cr3t", b1, hashlib.sha256).hexdigest()
        assert h1["authorization"] == "Bearer T0KEN"
        assert "T0KEN" not in caplog.text and "s3cr3t" not in caplog.text and "Q1" not in caplog.text
    finally:
        receiver.close()


@pytest.mark.parametrize("fmt,key", [("slack", "text"), ("discord", "content"), ("teams", "text")])
def test_chat_formats(fmt: str, key: str) -> None:
    receiver = Receiver()
    try:
        hook = Webhook("output:webhook", WebhookSettings(url=receiver.url, format=fmt, events=frozenset({"peer_down"})))

        async def go() -> None:
            await run(hook, events("peer_added", "peer_down"))
            await asyncio.to_thread(receiver.wait_for, 1)
            await hook.close()

        asyncio.run(go())
        assert [b[key] for b in receiver.bodies()] == ["wg0/alice: peer_down"]  # filtered to peer_down
    finally:
        receiver.close()


def test_down_receiver_gets_the_events_when_it_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    hook = Webhook("output:webhook", WebhookSettings(url=url, backoff_s=0.1, timeout_s=1))
    holder: list[Receiver] = []

    async def go() -> float:
        took = await run(hook, events("peer_down", "endpoint_changed"), settle=0.5)
        holder.append(await asyncio.to_thread(Receiver, port))  # it comes back
        await asyncio.to_thread(holder[0].wait_for, 2, 10.0)
        await hook.close()
        return took

    took = asyncio.run(go())
    try:
        assert took < 0.05  # publishing never waits for the receiver
        assert [b["kind"] for b in holder[0].bodies()] == ["peer_down", "endpoint_changed"]
        assert caplog.text.count("delivery failed") == 1  # logged once per run of failures
    finally:
        holder[0].close()


def test_500_is_retried_and_slow_receiver_never_delays_publish() -> None:
    receiver = Receiver()
    receiver.fail_next = 2
    receiver.delay_s = 0.5
    try:
        hook = Webhook("output:webhook", WebhookSettings(url=receiver.url, backoff_s=0.05, timeout_s=3))

        async def go() -> float:
            took = await run(hook, events("peer_down"))
            took += await run_more(hook)
            await asyncio.to_thread(receiver.wait_for, 2, 15.0)
            await hook.close()
            return took

        async def run_more(h: Webhook) -> float:
            started = time.monotonic()
            await h.publish(events("peer_up"))  # type: ignore[arg-type]
            return time.monotonic() - started

        # publish hands over and returns: well under the receiver's 0.5 s delay even on a loaded machine
        assert asyncio.run(go()) < 0.4
        assert [b["kind"] for b in receiver.bodies()] == ["peer_down", "peer_up"]
    finally:
        receiver.close()


def test_full_queue_drops_the_oldest_and_counts() -> None:
    hook = Webhook("output:webhook",
                   WebhookSettings(url=f"http://127.0.0.1:{free_port()}/x", queue_size=2, backoff_s=10))

    async def go() -> None:
        await hook.publish(events("peer_added", "peer_down", "peer_up"))  # type: ignore[arg-type]

    asyncio.run(go())
    assert [e.kind for e in hook.queue] == ["peer_down", "peer_up"]
    assert hook.dropped == 1


def test_retries_limit_drops_an_undeliverable_event() -> None:
    receiver = Receiver()
    receiver.fail_next = 100
    try:
        hook = Webhook("output:webhook", WebhookSettings(url=receiver.url, retries=2, backoff_s=0.01))

        async def go() -> None:
            await run(hook, events("peer_down"), settle=1.0)
            await hook.close()

        asyncio.run(go())
        assert hook.dropped == 1 and not hook.queue
    finally:
        receiver.close()
