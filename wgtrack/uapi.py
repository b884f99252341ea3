"""Userspace WireGuard (wireguard-go, boringtun) read without ``wg``: its UAPI socket asked
``get=1`` and the answer written as ``wg show all dump`` lines, so that the one dump parser
reads it. For the other namespaces: a process per namespace per cycle (nsenter, wg) costs
more than the reading itself.

The answer holds the interface's private key and the peers' preshared keys: neither is
written out (their columns say ``(none)``, as the parser would drop them anyway). The
interface's public key is worked out from the private one (X25519), once per key: what is
kept is a digest of the private key, never the key.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

MAX_ANSWER = 32 * 1024 * 1024  # bytes: 50,000 peers answer in about 18 MB
NONE = "(none)"
_P = 2**255 - 19
_A24 = 121665
_publics: dict[bytes, str] = {}  # sha256(private key) -> public key (base64)
_PUBLICS_MAX = 4096


def x25519_public(private: bytes) -> bytes:
    """The X25519 public key of ``private`` (RFC 7748, the base point u = 9). Not constant
    time: it runs once per interface key, on the host that holds the key."""
    clamped = bytearray(private)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    scalar = int.from_bytes(clamped, "little")
    x1, x2, z2, x3, z3, swap = 9, 1, 0, 9, 1, 0
    for t in reversed(range(255)):
        bit = (scalar >> t) & 1
        if swap ^ bit:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b, c, d = x2 + z2, x2 - z2, x3 + z3, x3 - z3
        aa, bb = a * a % _P, b * b % _P
        e = aa - bb
        da, cb = d * a % _P, c * b % _P
        x3, z3 = (da + cb) ** 2 % _P, x1 * (da - cb) ** 2 % _P
        x2, z2 = aa * bb % _P, e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def _public_of(private_hex: str) -> str:
    try:
        private = bytes.fromhex(private_hex)
    except ValueError:
        return NONE
    if len(private) != 32:
        return NONE
    # Imported here: only namespaces of userspace WireGuard come this way, and OpenSSL's hashes
    # cost every other daemon 0.7 MB of RSS.
    import hashlib

    digest = hashlib.sha256(private).digest()
    public = _publics.get(digest)
    if public is None:
        if len(_publics) >= _PUBLICS_MAX:
            _publics.clear()
        public = _publics[digest] = base64.b64encode(x25519_public(private)).decode()
    return public


def _key(hex_key: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(hex_key)).decode()
    except ValueError:
        return hex_key  # the parser then skips the line, saying why


def _peer_line(ifname: str, peer: dict[str, str], allowed: list[str]) -> str:
    keepalive = peer.get("persistent_keepalive_interval", "0")
    return "\t".join((ifname, _key(peer["public_key"]), NONE, peer.get("endpoint") or NONE,
                      ",".join(allowed) or NONE, peer.get("last_handshake_time_sec", "0"),
                      peer.get("rx_bytes", "0"), peer.get("tx_bytes", "0"),
                      "off" if keepalive in ("", "0") else keepalive))


def dump_lines(ifname: str, answer: str) -> str:
    """The answer to ``get=1`` as ``wg show all dump`` lines for ``ifname``; ValueError when the
    daemon reported an error (``errno`` not 0). Blocking for a big interface: run it off the loop."""
    interface: dict[str, str] = {}
    peers: list[str] = []
    peer: dict[str, str] | None = None
    allowed: list[str] = []
    for line in answer.split("\n"):
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "errno":
            if value != "0":
                raise ValueError(f"the WireGuard daemon answered errno {value}")
        elif key == "public_key":
            if peer is not None:
                peers.append(_peer_line(ifname, peer, allowed))
            peer, allowed = {"public_key": value}, []
        elif peer is None:
            interface[key] = value
        elif key == "allowed_ip":
            allowed.append(value)
        else:
            peer[key] = value
    if peer is not None:
        peers.append(_peer_line(ifname, peer, allowed))
    fwmark = interface.get("fwmark", "0")
    head = "\t".join((ifname, NONE, _public_of(interface.get("private_key", "")),
                      interface.get("listen_port", "0"), "off" if fwmark in ("", "0") else fwmark))
    return "\n".join((head, *peers)) + "\n"


def sockets(directory: str) -> list[tuple[str, str]]:
    """(interface, socket path) of each UAPI socket in ``directory``. Blocking: off the loop."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [(name[:-5], str(Path(directory) / name)) for name in names if name.endswith(".sock")]


async def ask(path: str) -> str:
    """The answer to ``get=1`` from the socket at ``path`` (the caller sets the deadline)."""
    reader, writer = await asyncio.open_unix_connection(path, limit=MAX_ANSWER)
    try:
        writer.write(b"get=1\n\n")
        await writer.drain()
        return (await reader.readuntil(b"\n\n")).decode("utf-8", "replace")
    finally:
        writer.close()
