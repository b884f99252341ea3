"""The nflog wire format, built by hand as the kernel sends it (the lab tests use the kernel)."""

from __future__ import annotations

import socket
import struct

from wgtrack import nflog
from wgtrack.nflog import WG_INITIATION, WG_RESPONSE, Handshake


def udp4(dport: int, payload: bytes) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     bytes([198, 51, 100, 11]), bytes([198, 51, 100, 1]))
    return ip + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def udp6(dport: int, payload: bytes, next_header: int = socket.IPPROTO_UDP) -> bytes:
    ip = struct.pack("!IHBB16s16s", 6 << 28, 8 + len(payload), next_header, 64, bytes(16), bytes(16))
    return ip + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def packet_message(packet: bytes, group: int = 5) -> bytes:
    """One NFULNL_MSG_PACKET as the kernel frames it: nfgenmsg, a header attribute, the payload."""
    attrs = nflog._attr(1, struct.pack("!HBB", 0x0800, 1, 0)) + nflog._attr(nflog.NFULA_PAYLOAD, packet)
    body = struct.pack("!BBH", socket.AF_INET, 0, group) + attrs
    return struct.pack("=IHHII", 16 + len(body), nflog.NFNL_SUBSYS_ULOG << 8, 0, 0, 0) + body


INIT = bytes([1, 0, 0, 0]) + bytes(144)
RESPONSE = bytes([2, 0, 0, 0]) + bytes(88)


def test_handshakes_are_recognised_in_ipv4_and_ipv6() -> None:
    assert nflog.wireguard_handshake(udp4(51820, INIT)) == Handshake(51820, WG_INITIATION)
    assert nflog.wireguard_handshake(udp6(51821, RESPONSE)) == Handshake(51821, WG_RESPONSE)


def test_other_packets_are_not_handshakes() -> None:
    data = bytes([4, 0, 0, 0]) + bytes(60)  # transport data
    cookie = bytes([3, 0, 0, 0]) + bytes(60)
    assert nflog.wireguard_handshake(udp4(51820, data)) is None
    assert nflog.wireguard_handshake(udp4(51820, cookie)) is None
    assert nflog.wireguard_handshake(udp4(51820, INIT[:100])) is None  # wrong length for its type
    assert nflog.wireguard_handshake(udp4(51820, bytes([1, 1, 0, 0]) + bytes(144))) is None  # reserved not 0
    assert nflog.wireguard_handshake(udp6(51820, INIT, next_header=0)) is None  # extension header
    assert nflog.wireguard_handshake(b"") is None
    assert nflog.wireguard_handshake(udp4(51820, INIT)[:30]) is None  # truncated by the copy range


def test_messages_and_payload_survive_truncation() -> None:
    one, two = packet_message(udp4(51820, INIT[:64])), packet_message(udp4(51820, RESPONSE[:64]))
    parsed = list(nflog.messages(one + two))
    assert [kind for kind, _ in parsed] == [nflog.NFNL_SUBSYS_ULOG << 8] * 2
    assert nflog.packet_payload(parsed[0][1]) == udp4(51820, INIT[:64])
    assert list(nflog.messages(one + two[:-5])) == parsed[:1]  # a cut message is dropped
    assert nflog.packet_payload(parsed[0][1][:-10]) is None


def test_config_messages_bind_then_set_the_copy_mode() -> None:
    bind, mode, _qthresh, _timeout = nflog.config_messages(5)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", bind)
    assert (length, kind, flags, seq) == (len(bind), 0x0401, nflog.NLM_F_REQUEST | nflog.NLM_F_ACK, 1)
    assert bind[16:20] == bytes([0, 0, 0, 5])  # AF_UNSPEC, version 0, group 5 big-endian
    assert bind[20:25] == struct.pack("=HH", 5, nflog.NFULA_CFG_CMD) + bytes([nflog.NFULNL_CFG_CMD_BIND])
    assert mode[24:30] == struct.pack("!IBB", nflog.COPY_RANGE, nflog.NFULNL_COPY_PACKET, 0)
    assert len(bind) % 4 == 0 and len(mode) % 4 == 0
    assert nflog.ack_error(struct.pack("=i", 0)) == 0 and nflog.ack_error(struct.pack("=i", -1)) == 1
