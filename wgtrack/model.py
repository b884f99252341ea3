"""Typed records of what WireGuard reports: interfaces and peers, with no secrets in them."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One peer as the kernel or wireguard-go reports it at one instant."""

    interface: str
    public_key: str
    endpoint: str | None  # numeric "ip:port" or "[v6]:port"; None when unknown
    allowed_ips: tuple[str, ...]
    latest_handshake: int  # epoch seconds, 0 = never
    rx_bytes: int
    tx_bytes: int
    keepalive_s: int  # 0 = off


@dataclass(frozen=True, slots=True)
class InterfaceRecord:
    """One WireGuard interface; the private key is deliberately not a field."""

    name: str
    public_key: str
    listen_port: int | None
    fwmark: int | None
    peers: tuple[PeerRecord, ...]


@dataclass(frozen=True, slots=True)
class Dump:
    """A parsed ``wg show all dump``: the interfaces, and what could not be read."""

    interfaces: tuple[InterfaceRecord, ...]
    problems: tuple[tuple[str, int, int], ...] = ()  # (kind, lines, first line number) per kind
    bad_lines: int = 0


@dataclass(frozen=True, slots=True)
class DumpChange:
    """What a dump changed since the one before it (``dump.DumpReader``): on a big hub almost
    every line is the same from one cycle to the next, and only the rest is worth a look."""

    interfaces: tuple[InterfaceRecord, ...]  # every interface listed, without peers (see ``changed``)
    changed: tuple[PeerRecord, ...]  # peers whose line is new or differs from the last dump's
    gone: tuple[tuple[str, str], ...]  # (interface, public key) of peers no longer listed
    problems: tuple[tuple[str, int, int], ...] = ()  # always none: a dump with problems is read whole
    bad_lines: int = 0


def short_key(public_key: str) -> str:
    """A log-friendly prefix of a public key (public keys are not secret, just long)."""
    return public_key[:8] + "…"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` / ``[v6%zone]:port`` into host and port.

    Raises ValueError when it is not of that shape.
    """
    if endpoint.startswith("["):
        host, sep, rest = endpoint[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("bracketed endpoint without ]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = endpoint.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("endpoint without :port (IPv6 needs brackets)")
    if not host:
        raise ValueError("endpoint without host")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("endpoint port is not 1-65535")
    return host, int(port_text)


def is_ip_literal(host: str) -> bool:
    """True for a numeric IPv4/IPv6 address (an IPv6 zone suffix is allowed)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def parse_cidr(cidr: str) -> tuple[int, bytes, int] | None:
    """(family, packed address, prefix length) of ``address/prefix``, or None. The socket
    module's parser: a 50,000-peer hub's first dump has 50,000 of these, and ipaddress takes
    about 20 µs each."""
    address, slash, prefix = cidr.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    if not slash or not prefix.isdigit() or int(prefix) > (128 if family == socket.AF_INET6 else 32):
        return None
    try:
        return family, socket.inet_pton(family, address), int(prefix)
    except OSError:
        return None


def single_host_address(cidr: str) -> str | None:
    """The host address of a /32 or /128 allowed IP, else None (a range is never pinged)."""
    parsed = parse_cidr(cidr)
    if parsed is None or parsed[2] != (128 if parsed[0] == socket.AF_INET6 else 32):
        return None
    return socket.inet_ntop(parsed[0], parsed[1])
