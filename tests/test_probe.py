"""Probes on loopback, through both icmplib paths (async, and the icmplib 2 worker thread)."""

from __future__ import annotations

import asyncio
import os

import pytest

from wgtrack import probe
from wgtrack.link import ProbeResult

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="raw ICMP sockets need root (make test runs as root)")


@pytest.mark.parametrize("path", [probe.ping, probe.ping_in_thread])
def test_loopback_answers(path) -> None:  # type: ignore[no-untyped-def]
    result = asyncio.run(path("127.0.0.1", 1, 0.5))
    assert result.ok and result.rtt_ms is not None and result.loss == 0.0


@pytest.mark.parametrize("path", [probe.ping, probe.ping_in_thread])
def test_unroutable_is_a_failed_result(path) -> None:  # type: ignore[no-untyped-def]
    # 192.0.2.0/24 is documentation space: nothing answers (or there is no route at all).
    result = asyncio.run(path("192.0.2.254", 1, 0.3))
    assert not result.ok and result.loss == 1.0


def test_concurrent_thread_probes_keep_their_own_replies() -> None:
    async def many() -> list[ProbeResult]:
        return await asyncio.gather(*(probe.ping_in_thread(t, 1, 0.5) for t in ["127.0.0.1", "192.0.2.254"] * 4))

    results = asyncio.run(many())
    assert [r.ok for r in results] == [True, False] * 4
