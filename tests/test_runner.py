"""Outputs run in tasks of their own: hand-over keeps the newest state and every event, a
reload that fails part-way rolls back, back-off is capped after any outage, and failures are
logged once per run."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import socket

import pytest

from tests.servers import free_port
from tests.snapshots import snapshot
from wgtrack import config
from wgtrack.errors import StartupError
from wgtrack.events import Event
from wgtrack.outputs import Output
from wgtrack.outputs.runner import Outputs, Runner
from wgtrack.outputs.webhook import Webhook
from wgtrack.retry import Backoff, FailureRun
from wgtrack.snapshot import Snapshot


def with_events(cycle: int, *kinds: str) -> Snapshot:
    events = tuple(Event(k, 1_800_000_000.0 + cycle, f"{k} {cycle}") for k in kinds)
    return dataclasses.replace(snapshot(), cycle=cycle, events=events)


class SlowOutput(Output):
    name = "output:slow"

    def __init__(self) -> None:
        self.seen: list[Snapshot] = []
        self.release = asyncio.Event()

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def publish(self, snap: Snapshot) -> None:
        self.seen.append(snap)
        await self.release.wait()

    async def close(self) -> None:
        return None


def test_a_stalled_output_gets_the_newest_state_and_every_event_in_order() -> None:
    async def go() -> SlowOutput:
        out = SlowOutput()
        runner = Runner("output:slow", None, out, lambda: None)
        await runner.start()
        runner.offer(with_events(1, "a"))
        await asyncio.sleep(0.01)  # publish of cycle 1 is under way and stuck
        for cycle, kind in ((2, "b"), (3, "c"), (4, "d")):
            runner.offer(with_events(cycle, kind))  # the cycle never waits
        out.release.set()
        await runner.close()
        return out

    out = asyncio.run(go())
    assert [s.cycle for s in out.seen] == [1, 4]  # state: only the newest
    assert [e.kind for s in out.seen for e in s.events] == ["a", "b", "c", "d"]  # events: all, in order


def test_a_long_stall_that_drops_events_says_so_once(caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping carried events is one line per stall, not one per hand-over (0.3.0 warned on
    every cycle of a stall); the count is still kept, and the recovery is said once."""
    monkeypatch.setattr("wgtrack.outputs.runner.MAX_CARRIED_EVENTS", 3)

    async def go() -> Runner:
        out = SlowOutput()
        runner = Runner("output:slow", None, out, lambda: None)
        await runner.start()
        runner.offer(with_events(1, "a"))
        await asyncio.sleep(0.01)  # stuck in the first publish
        for cycle in range(2, 40):
            runner.offer(with_events(cycle, "x", "y"))
        out.release.set()
        await runner.close()
        return runner

    with caplog.at_level(logging.INFO, logger="wgtrack.outputs.runner"):
        runner = asyncio.run(go())
    assert runner.dropped_events == 2 * 38 - 3
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "dropping the oldest" in m]) == 1, said
    assert len([m for m in said if "delivering again" in m]) == 1, said


def test_a_reload_that_fails_part_way_rolls_back_and_keeps_the_queue() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    dead = free_port()
    before = config.parse(f"[output:influx]\nenabled = no\n[output:webhook]\nurl = http://127.0.0.1:{dead}/x\n"
                          "backoff = 30\n")
    after = config.parse(f"[output:influx]\nenabled = no\n[output:webhook]\nurl = http://127.0.0.1:{dead}/x\n"
                         f"backoff = 20\n[output:prometheus]\nlisten = 127.0.0.1:{taken.getsockname()[1]}\n")

    async def go() -> Outputs:
        outputs = Outputs(lambda: None)
        await outputs.start(before)
        outputs.offer(with_events(1, "peer_down", "peer_up"))
        await asyncio.sleep(0.2)  # the first POST fails; the events wait for the back-off
        with pytest.raises(StartupError, match="cannot listen"):
            await outputs.reconcile(after)
        return outputs

    try:
        outputs = asyncio.run(go())
    finally:
        taken.close()
    assert list(outputs.runners) == ["output:webhook"]  # no half-started exporter
    hook = outputs.runners["output:webhook"].output
    assert isinstance(hook, Webhook) and hook.settings.backoff_s == 30  # the old settings are back
    assert [e.kind for e in hook.queue] == ["peer_down", "peer_up"]  # and so is the queue


def test_backoff_is_capped_after_any_outage() -> None:
    backoff = Backoff(1.0, 60.0, rand=lambda: 0.0)
    delays = [backoff.failed() for _ in range(1_000_000)]  # ~2 years of failures at the cap
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert all(math.isfinite(d) and d <= 60.0 for d in delays) and delays[-1] == 60.0
    assert backoff.succeeded() == 1_000_000 and backoff.failed() == 1.0
    jittered = Backoff(1.0, 60.0, rand=lambda: 0.999)
    assert 0.75 <= jittered.failed() <= 1.0


def test_failures_are_logged_once_per_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    run = FailureRun(logging.getLogger("t"), "output:x")
    for _ in range(1000):
        run.failed("HTTP 500")
    run.recovered()
    run.recovered()
    assert [r.getMessage() for r in caplog.records] == [
        "output:x: failed (logged once until it recovers): HTTP 500",
        "output:x: working again after 1000 failure(s)"]


def test_an_unknown_user_costs_one_bcrypt_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import bcrypt

    from wgtrack.webconfig import Authenticator

    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    auth = Authenticator({"prom": bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5))})
    assert not auth.check("nobody", "guess")
    assert not auth.check("prom", "guess")
    assert len(calls) == 2 and calls[0][:7] == calls[1][:7] == b"$2b$05$"  # the same cost for both
