"""ICMP echo probes through the tunnel, with icmplib: raw socket as root or with CAP_NET_RAW,
datagram otherwise.

icmplib 3 has ``async_ping``; Debian 12 ships icmplib 2.1, which has only the blocking
``ping``. There each probe runs in a worker thread of its own pool (never on the event loop),
with a random ICMP id so that concurrent probes cannot take each other's replies.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
from typing import Any

import icmplib

from wgtrack.link import ProbeResult
from wgtrack.workers import Workers

CAP_NET_RAW = 13
PROBE_THREADS = 64  # concurrent blocking probes with icmplib 2 (each mostly waits)
_pool = Workers("probe", threads=PROBE_THREADS)  # daemon threads: a probe never delays an exit


@functools.cache
def raw_sockets() -> bool:
    """Whether raw ICMP sockets are open to us: as root, or with CAP_NET_RAW (a non-root service
    given it). Otherwise probes use datagram ICMP sockets, which ping_group_range must allow."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except (OSError, ValueError):
        pass
    return False


def _result(host: Any) -> ProbeResult:
    if host.is_alive:
        return ProbeResult(ok=True, rtt_ms=host.avg_rtt, loss=host.packet_loss)
    return ProbeResult(ok=False, loss=host.packet_loss, reason="no reply")


async def ping(target: str, count: int, timeout_s: float) -> ProbeResult:
    """Probe ``target``; an unreachable or refused probe is a failed result, not an exception."""
    if hasattr(icmplib, "async_ping"):
        request = icmplib.async_ping(target, count=count, interval=0.2, timeout=timeout_s,
                                     privileged=raw_sockets())
        return await _bounded(request, count, timeout_s)
    return await ping_in_thread(target, count, timeout_s)


async def ping_in_thread(target: str, count: int, timeout_s: float) -> ProbeResult:
    """The icmplib 2 path: the blocking ``icmplib.ping`` in a worker thread."""
    call = functools.partial(icmplib.ping, target, count=count, interval=0.2, timeout=timeout_s,
                             id=random.randint(1, 0xFFFF), privileged=raw_sockets())
    return await _bounded(_pool.run(call), count, timeout_s)


async def _bounded(request: Any, count: int, timeout_s: float) -> ProbeResult:
    try:
        host = await asyncio.wait_for(request, timeout=count * (timeout_s + 0.2) + 1.0)
    except TimeoutError:
        return ProbeResult(ok=False, loss=1.0, reason="probe timed out")
    except icmplib.ICMPLibError as exc:
        return ProbeResult(ok=False, loss=1.0, reason=f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return ProbeResult(ok=False, loss=1.0, reason=f"socket error: {exc.strerror or exc}")
    return _result(host)
