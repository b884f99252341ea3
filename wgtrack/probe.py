"""ICMP echo probes through the tunnel, with icmplib: raw socket as root, datagram otherwise."""

from __future__ import annotations

import asyncio
import os

import icmplib

from wgtrack.link import ProbeResult


async def ping(target: str, count: int, timeout_s: float) -> ProbeResult:
    """Probe ``target``; an unreachable or refused probe is a failed result, not an exception."""
    try:
        host = await asyncio.wait_for(
            icmplib.async_ping(target, count=count, interval=0.2, timeout=timeout_s,
                               privileged=os.geteuid() == 0),
            timeout=count * (timeout_s + 0.2) + 1.0,
        )
    except TimeoutError:
        return ProbeResult(ok=False, loss=1.0, reason="probe timed out")
    except icmplib.ICMPLibError as exc:
        return ProbeResult(ok=False, loss=1.0, reason=f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return ProbeResult(ok=False, loss=1.0, reason=f"socket error: {exc.strerror or exc}")
    if host.is_alive:
        return ProbeResult(ok=True, rtt_ms=host.avg_rtt, loss=host.packet_loss)
    return ProbeResult(ok=False, loss=host.packet_loss, reason="no reply")
