"""What the daemon talks to: ``wg``, the prober, service checks, DNS, the wall clock. The
defaults are the real ones; tests pass fakes, so that a whole cycle runs in-process."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wgtrack import checks, link, netns, pmtu, probe
from wgtrack.probe import OnReply
from wgtrack.resolve import Resolver
from wgtrack.wgcmd import WgResult, run_program, run_wg, show_all_dump

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Time as the daemon reads it. ``monotonic`` must be the event loop's own ``time()``: the
    loop's timers (cycle deadlines, probe timeouts) run on it. Tests pass a simulated clock
    with a loop that follows it (tests/simtime.py), and a whole daemon runs minutes in
    milliseconds."""

    def monotonic(self) -> float: ...

    def wall_ns(self) -> int: ...


@dataclass(frozen=True)
class SystemClock:
    """The real one: asyncio's loops run on ``time.monotonic``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ns(self) -> int:
        return time.time_ns()


class ResolverLike(Protocol):
    async def resolve(self, hostname: str) -> link.ResolveResult: ...


def send_handshake_packet(target: str) -> None:
    """One UDP datagram into the tunnel (discard port): enough to make WireGuard handshake.
    ``<netns>/<address>``: sent from inside that namespace."""
    name, _, target = target.rpartition("/")
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    path = netns.path_of(name) if name else None
    try:
        if name and path is None:
            raise OSError(f"netns {name} is gone")
        opened = socket.socket(family, socket.SOCK_DGRAM) if path is None else netns.open_socket(
            path, family, socket.SOCK_DGRAM, 0)
        with opened as sock:
            sock.setblocking(False)
            sock.sendto(b"wgtrack", (target, 9))
    except OSError as exc:
        log.debug("handshake trigger to %s failed: %s", target, exc)


_PING, _ECHO = probe.ping, probe.echo  # (the class's fields of these names hide the module)


@dataclass(frozen=True)
class World:
    """The daemon's collaborators, each a plain callable."""

    read_wg: Callable[[str, float], Awaitable[WgResult]] = show_all_dump  # (wg command, timeout)
    run_wg: Callable[[str, list[str], float], Awaitable[WgResult]] = run_wg
    run_program: Callable[[list[str], float, bytes | None], Awaitable[WgResult]] = run_program  # nft
    # (target, count, timeout, urgent: up or in its first minute down, so it goes first when probes wait)
    probe: Callable[[str, int, float, bool], Awaitable[link.ProbeResult]] = probe.ping
    # One echo, its answer to a callback (the fast lane's plain probes of up links); None: every
    # probe through ``probe`` (a faked one must not be bypassed: see __post_init__)
    echo: Callable[[str, float, OnReply], None] | None = _ECHO
    check: Callable[[checks.Check, float], Awaitable[checks.CheckResult]] = checks.run  # (check, timeout)
    search_mtu: Callable[[str, float], Awaitable[link.MtuResult]] = pmtu.search  # (target, timeout per echo)
    resolver: Callable[[Path, float], ResolverLike] = Resolver  # (hosts file, DNS timeout)
    send_handshake_packet: Callable[[str], None] = send_handshake_packet  # link.TriggerHandshake
    clock: Clock = SystemClock()

    def __post_init__(self) -> None:
        if self.probe is not _PING and self.echo is _ECHO:
            object.__setattr__(self, "echo", None)  # a test's probe answers every probe
