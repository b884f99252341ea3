"""The nflog trigger's wire format: netfilter's NFLOG over netlink, and WireGuard's handshakes.

With an nft rule such as ``udp dport 51820 log group 5``, the kernel copies every matching
packet to netlink group 5. wgtrack subscribes (``[trigger:nflog] group = 5``) and, on a
WireGuard handshake initiation or response arriving at an interface's listen port, reads that
interface at once instead of at the next cycle. No dependency: the messages are small and
fixed (linux/netfilter/nfnetlink_log.h). Parsing is pure; ``NflogSocket`` is the only I/O.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NFULA_CFG_CMD = 1
NFULA_CFG_MODE = 2
NFULA_CFG_TIMEOUT = 4
NFULA_CFG_QTHRESH = 5
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
NFULA_PAYLOAD = 9
NLA_TYPE_MASK = 0x3FFF  # the two top bits flag nested / byte order
# Enough of each packet for an IPv4 header with options or an IPv6 header, UDP, and the
# WireGuard message type; nothing of the handshake's (encrypted) contents is needed.
COPY_RANGE = 96
RCVBUF = 1 << 20

WG_INITIATION = 1  # message type, followed by three zero bytes; 148 bytes in all
WG_RESPONSE = 2  # 92 bytes
_WG_SIZES = {WG_INITIATION: 148, WG_RESPONSE: 92}

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_NFGENMSG = struct.Struct("!BBH")  # family, version, resource id (the group), big-endian
_NLATTR = struct.Struct("=HH")


class NflogError(OSError):
    """The group could not be bound: a reason an operator can act on."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """A WireGuard handshake message seen on its way in: the UDP port it went to."""

    dport: int
    kind: int  # WG_INITIATION or WG_RESPONSE


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _NLATTR.pack(_NLATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _config(group: int, seq: int, *attrs: bytes) -> bytes:
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, group) + b"".join(attrs)
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def config_messages(group: int) -> list[bytes]:
    """Bind ``group``, copy the first COPY_RANGE bytes of each packet, deliver each at once."""
    return [
        _config(group, 1, _attr(NFULA_CFG_CMD, bytes([NFULNL_CFG_CMD_BIND]))),
        _config(group, 2, _attr(NFULA_CFG_MODE, struct.pack("!IBB", COPY_RANGE, NFULNL_COPY_PACKET, 0))),
        _config(group, 3, _attr(NFULA_CFG_QTHRESH, struct.pack("!I", 1))),
        _config(group, 4, _attr(NFULA_CFG_TIMEOUT, struct.pack("!I", 0))),
    ]


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, body) of each netlink message in one datagram; a truncated tail is dropped."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        yield kind, data[offset + _NLMSGHDR.size:offset + length]
        offset += (length + 3) & ~3


def ack_error(body: bytes) -> int:
    """The errno of an NLMSG_ERROR (0 for an acknowledgement)."""
    return -struct.unpack_from("=i", body)[0] if len(body) >= 4 else errno.EPROTO


def packet_payload(body: bytes) -> bytes | None:
    """The logged packet (from its IP header) of one NFULNL_MSG_PACKET body."""
    offset = _NFGENMSG.size
    while offset + _NLATTR.size <= len(body):
        length, kind = _NLATTR.unpack_from(body, offset)
        if length < _NLATTR.size or offset + length > len(body):
            return None
        if kind & NLA_TYPE_MASK == NFULA_PAYLOAD:
            return body[offset + _NLATTR.size:offset + length]
        offset += (length + 3) & ~3
    return None


def wireguard_handshake(packet: bytes) -> Handshake | None:
    """The handshake in an IPv4 or IPv6 UDP packet, or None for anything else (data, cookie
    replies, other traffic the rule may have matched)."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        if packet[9] != socket.IPPROTO_UDP or header < 20:
            return None
    elif version == 6 and len(packet) >= 40:
        header = 40
        if packet[6] != socket.IPPROTO_UDP:  # extension headers: not from WireGuard
            return None
    else:
        return None
    if len(packet) < header + 12:
        return None
    dport, udp_length = struct.unpack_from("!HH", packet, header + 2)
    kind = packet[header + 8]
    if _WG_SIZES.get(kind) != udp_length - 8 or packet[header + 9:header + 12] != b"\0\0\0":
        return None
    return Handshake(dport, kind)


class NflogSocket:
    """One netlink socket bound to one nflog group; non-blocking once open."""

    def __init__(self, group: int, opener: Callable[[int, int, int], socket.socket] = socket.socket) -> None:
        self.group = group
        # opener: netns.open_socket for another namespace (nflog groups are per namespace)
        self.sock = opener(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self.sock.bind((0, 0))
            self.sock.settimeout(2.0)  # the kernel answers at once; never wait long for it
            for message in config_messages(group):
                self.sock.send(message)
                self._expect_ack()
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def _expect_ack(self) -> None:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise NflogError(errno.ETIMEDOUT, f"nflog group {self.group}: the kernel did not answer") from None
        for kind, body in messages(data):
            if kind == NLMSG_ERROR:
                code = ack_error(body)
                if code == 0:
                    return
                why = {errno.EPERM: "needs CAP_NET_ADMIN",
                       errno.EBUSY: "another program (ulogd?) has bound this group"}.get(code, os.strerror(code))
                raise NflogError(code, f"nflog group {self.group}: {why}")
        raise NflogError(errno.EPROTO, f"nflog group {self.group}: no acknowledgement from the kernel")

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, limit: int) -> tuple[list[Handshake], int, bool]:
        """What is waiting, at most ``limit`` datagrams: (handshakes, packets logged, overrun).
        ``overrun``: the kernel dropped messages (ENOBUFS), so some handshakes went unseen."""
        found: list[Handshake] = []
        packets = 0
        for _ in range(limit):
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    return found, packets, True
                raise
            for kind, body in messages(data):
                if kind != (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET:
                    continue
                packets += 1
                payload = packet_payload(body)
                handshake = wireguard_handshake(payload) if payload else None
                if handshake is not None:
                    found.append(handshake)
        return found, packets, False

    def close(self) -> None:
        self.sock.close()
