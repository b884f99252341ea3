"""Opening a probe socket: raw where we may (root or CAP_NET_RAW), filtered to our own echo
replies; a datagram ICMP socket otherwise; DF set for path-MTU probes; big buffers."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable

from wgtrack import icmpfilter
from wgtrack.icmppacket import DONT_FRAGMENT

CAP_NET_RAW = 13
SOCKET_BUFFER = 16 << 20  # kernel memory, taken only while packets wait; a loopback skb takes ~4 KB


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


def open_icmp(opener: Callable[[int, int, int], socket.socket], family: int, raw: bool, df: bool,
              ident: int) -> socket.socket:
    """A non-blocking ICMP socket of ``family`` through ``opener`` (another namespace's, maybe);
    a raw one lets only echo replies carrying ``ident`` in."""
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    sock = opener(family, socket.SOCK_RAW if raw else socket.SOCK_DGRAM, proto)
    sock.setblocking(False)
    try:
        for level, name, value in DONT_FRAGMENT[family] if df else ():
            sock.setsockopt(level, name, value)
        if raw:
            icmpfilter.attach(sock, family, ident)  # only our echo replies wake us
    except OSError:
        sock.close()
        raise
    # A burst of replies must not overflow the default ~200 KB buffers, nor requests to
    # dead addresses (each held until the neighbour lookup gives up) block the others:
    # ask for more, beyond rmem_max/wmem_max where allowed.
    for forced, plain in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
                          (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF)):
        for option in (forced, plain):
            try:
                if option is not None:
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                    break
            except OSError:
                continue
    return sock
