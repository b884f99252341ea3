"""The path-MTU search: whether packets as big as the tunnel allows cross it, and if not, the
largest that does.

A path-MTU black hole (a hop on the underlay that drops big packets and sends no ICMP back)
lets the handshake and small pings through while SSH, HTTPS and big transfers hang. So: one
echo request with DF set at the tunnel's full size (the route's MTU, which is the WireGuard
interface's); if it is lost, one at a small size; if that passes, a binary search between them.

- A size fails only when ``TRIES`` echo requests of it go unanswered, one after the other: on a
  link with 15 % loss both ways, four in a row are lost about once in 150 searches, and a lost
  small probe ends the search with no verdict. Loss is not an MTU.
- The search runs over multiples of ``STEP`` (16) bytes: WireGuard pads every inner packet to
  16 bytes before it encrypts it, so the underlay sees sizes in steps of 16 and the largest
  inner packet that passes is a multiple of 16 (or the tunnel's MTU). From 128 bytes to an
  MTU of 1420 that is at most 7 probes; at most ``MAX_STEPS`` (8) in any case.
- Its echoes are not the link's quality: they are not counted in its loss or RTT figures.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable

from wgtrack import netns, probe
from wgtrack.link import MtuResult

IP_MTU, IPV6_MTU = 14, 24  # <linux/in.h>, <linux/in6.h>: the path MTU of a connected socket's route
TRIES = 4
STEP = 16
FLOOR = 128  # the small size: passes on any working link
MAX_STEPS = 8

Passes = Callable[[int], Awaitable[bool]]


Opener = Callable[[int, int, int], socket.socket]  # (family, type, proto): netns.open_socket inside a namespace


def route_mtu(address: str, opener: Opener = socket.socket) -> int:
    """The MTU of the route to ``address``: a UDP socket is connected to it, which sends
    nothing, and the kernel says the route's MTU (at most 65,535)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with opener(family, socket.SOCK_DGRAM, 0) as sock:
        sock.connect((address.split("%", 1)[0], 9))
        if family == socket.AF_INET6:
            return sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
        return sock.getsockopt(socket.IPPROTO_IP, IP_MTU)


async def bisect(passes: Passes, mtu: int) -> tuple[int | None, str]:
    """(the largest size that passes, "") or (None, why there is no verdict)."""
    if await passes(mtu):
        return mtu, ""
    if not await passes(FLOOR):
        return None, "small packets were lost too: no verdict (loss, or the link is down)"
    low, high = FLOOR, mtu  # low passes, high does not
    for _ in range(MAX_STEPS):
        first, last = low // STEP + 1, (high - 1) // STEP  # the multiples of STEP between them
        if first > last:
            break
        middle = (first + last) // 2 * STEP
        if await passes(middle):
            low = middle
        else:
            high = middle
    return low, ""


async def search(target: str, timeout_s: float) -> MtuResult:
    """Search the path MTU to ``target`` through its tunnel (the daemon's ``World.search_mtu``)."""
    name, _, address = target.rpartition("/")
    path = netns.path_of(name) if name else None
    try:
        if name and path is None:
            raise OSError(f"netns {name} is gone")
        mtu = min(65535, route_mtu(address, socket.socket if path is None else functools.partial(
            netns.open_socket, path)))
    except OSError as exc:
        return MtuResult(None, None, f"cannot read the route's MTU: {exc.strerror or exc}")

    async def passes(size: int) -> bool:
        for _ in range(TRIES):
            if (await probe.ping(target, 1, timeout_s, True, size)).ok:
                return True
        return False

    path_mtu, reason = await bisect(passes, mtu)
    return MtuResult(path_mtu, mtu, reason)
