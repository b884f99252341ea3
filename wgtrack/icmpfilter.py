"""Kernel-side filters for the prober's raw ICMP sockets: the kernel hands wgtrack only echo
replies that carry its identifier, so no other ICMP packet of the host wakes it or costs a
copy (a raw socket with no filter gets every ICMP packet the host receives: a ping flood
through a tunnel cost 23 % of a core, each request parsed in Python and dropped).

Two layers: ``ICMP_FILTER`` / ``ICMP6_FILTER`` let only echo replies through (by type, in the
kernel's raw delivery), and a classic BPF program (``SO_ATTACH_FILTER``) checks the identifier.
A datagram ("ping") socket needs neither: the kernel gives it only its own replies.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26
SOL_RAW = 255
ICMP_FILTER = 1  # on SOL_RAW: a mask of the ICMP types to block
ICMP6_FILTER = 1  # on IPPROTO_ICMPV6: struct icmp6_filter, a bit set blocks that type
ECHO_REPLY: dict[int, int] = {socket.AF_INET: 0, socket.AF_INET6: 129}

# Classic BPF: (code, jump if true, jump if false, k).
_LDXB_MSH = 0xB1  # X = 4 * (packet[k] & 0xf): the IPv4 header's length
_LDB_IND, _LDH_IND = 0x50, 0x48  # A = packet[X + k] (byte, half-word)
_LDB_ABS, _LDH_ABS = 0x30, 0x28  # A = packet[k]
_JEQ = 0x15
_RET = 0x06
_KEEP = 0xFFFF  # bytes of an accepted packet kept (all of an echo reply)


def reply_program(family: int, ident: int) -> list[tuple[int, int, int, int]]:
    """Accept an echo reply whose identifier is ``ident``, drop everything else. A raw IPv4
    socket sees the IP header first; a raw ICMPv6 socket sees the ICMPv6 header."""
    if family == socket.AF_INET:
        return [
            (_LDXB_MSH, 0, 0, 0),
            (_LDB_IND, 0, 0, 0),  # type
            (_JEQ, 0, 3, ECHO_REPLY[family]),
            (_LDH_IND, 0, 0, 4),  # identifier
            (_JEQ, 0, 1, ident),
            (_RET, 0, 0, _KEEP),
            (_RET, 0, 0, 0),
        ]
    return [
        (_LDB_ABS, 0, 0, 0),  # type
        (_JEQ, 0, 3, ECHO_REPLY[family]),
        (_LDH_ABS, 0, 0, 4),  # identifier
        (_JEQ, 0, 1, ident),
        (_RET, 0, 0, _KEEP),
        (_RET, 0, 0, 0),
    ]


def attach(sock: socket.socket, family: int, ident: int) -> None:
    """Filter a raw ICMP socket down to our echo replies (raises OSError if the kernel refuses)."""
    if family == socket.AF_INET:
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY[family]) & 0xFFFFFFFF))
    else:
        blocked = [0xFFFFFFFF] * 8
        blocked[ECHO_REPLY[family] >> 5] &= ~(1 << (ECHO_REPLY[family] & 31)) & 0xFFFFFFFF
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
    program = reply_program(family, ident)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    # struct sock_fprog: the count, then a pointer to the instructions (the kernel copies them).
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(code)))
