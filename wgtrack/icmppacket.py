"""ICMP echo packets as the prober writes and reads them: requests (with the IPv4 checksum the
kernel leaves to a raw socket), replies (identifier and sequence), the socket options of a
don't-fragment socket, and probe targets parsed once."""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct

_ECHO: dict[int, tuple[int, int]] = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # (request, reply)
PAYLOAD = b"wgtrack probe\0" + bytes(18)  # 32 bytes, ping's 56 would do as well
_HEADER = struct.Struct("!BBHHH")


@functools.lru_cache(maxsize=65536)
def family_of(target: str) -> tuple[int, str]:
    """(family, address as the socket writes it) of a probe target; parsed once per target (a
    hub probes each of thousands a second)."""
    address = ipaddress.ip_address(target.split("%", 1)[0])
    return (socket.AF_INET6 if address.version == 6 else socket.AF_INET), str(address)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) an ICMPv4 header carries; the kernel does ICMPv6's."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int, payload: bytes = PAYLOAD) -> bytes:
    kind = _ECHO[family][0]
    packet = _HEADER.pack(kind, 0, 0, ident, seq) + payload
    if family == socket.AF_INET:
        packet = _HEADER.pack(kind, 0, checksum(packet), ident, seq) + payload
    return packet


# Full-size probes (the path-MTU search) leave from a socket of their own that sets DF and
# never fragments, whatever the kernel has cached for the path (IP_PMTUDISC_PROBE, as tracepath).
# IP_MTU_DISCOVER = IP_PMTUDISC_PROBE; IPV6_MTU_DISCOVER = IPV6_PMTUDISC_PROBE, and IPV6_DONTFRAG
DONT_FRAGMENT: dict[int, tuple[tuple[int, int, int], ...]] = {
    socket.AF_INET: ((socket.IPPROTO_IP, 10, 3),),
    socket.AF_INET6: ((socket.IPPROTO_IPV6, 23, 3), (socket.IPPROTO_IPV6, 62, 1)),
}
# IP and ICMP headers: a probe of size N carries N minus this of payload
HEADERS: dict[int, int] = {socket.AF_INET: 28, socket.AF_INET6: 48}


def echo_reply(family: int, data: bytes, raw: bool) -> tuple[int, int] | None:
    """(identifier, sequence) of an echo reply, or None for any other ICMP message. A raw IPv4
    socket hands over the IP header too."""
    if family == socket.AF_INET and raw:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < _HEADER.size or data[0] != _ECHO[family][1] or data[1] != 0:
        return None
    _kind, _code, _sum, ident, seq = _HEADER.unpack_from(data)
    return ident, seq



