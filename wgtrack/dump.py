"""Pure parser for ``wg show all dump``; drops private and preshared keys as it reads."""

from __future__ import annotations

import base64
import binascii

from wgtrack.model import Dump, InterfaceRecord, PeerRecord, split_endpoint

_NONE = "(none)"


def is_public_key(text: str) -> bool:
    """A WireGuard key is 32 bytes in standard base64: 44 characters ending in '='."""
    if len(text) != 44 or not text.endswith("="):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _int_field(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{what} is not a non-negative integer")
    return int(text)


def _optional_port(text: str) -> int | None:
    if text in ("0", "off", _NONE):
        return None
    return _int_field(text, "listen-port")


def _fwmark(text: str) -> int | None:
    if text in ("off", "0", _NONE):
        return None
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        raise ValueError("fwmark is not a number") from None


def _keepalive(text: str) -> int:
    if text in ("off", _NONE):
        return 0
    return _int_field(text, "persistent-keepalive")


def _endpoint(text: str) -> str | None:
    if text == _NONE:
        return None
    split_endpoint(text)  # validates; we keep wg's own spelling
    return text


def _allowed_ips(text: str) -> tuple[str, ...]:
    if text in (_NONE, ""):
        return ()
    return tuple(part for part in text.split(",") if part)


def _interface(fields: list[str]) -> InterfaceRecord:
    # fields: ifname private-key public-key listen-port fwmark; fields[1] is never kept.
    name, _private, public, port, fwmark = fields
    if not is_public_key(public):
        raise ValueError("interface public key is malformed")
    return InterfaceRecord(name, public, _optional_port(port), _fwmark(fwmark), ())


def _peer(fields: list[str]) -> PeerRecord:
    # fields: ifname public-key preshared-key endpoint allowed-ips handshake rx tx keepalive;
    # fields[2] (the preshared key) is never kept.
    name, public, _psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
    if not is_public_key(public):
        raise ValueError("peer public key is malformed")
    return PeerRecord(
        interface=name,
        public_key=public,
        endpoint=_endpoint(endpoint),
        allowed_ips=_allowed_ips(allowed),
        latest_handshake=_int_field(handshake, "latest-handshake"),
        rx_bytes=_int_field(rx, "transfer-rx"),
        tx_bytes=_int_field(tx, "transfer-tx"),
        keepalive_s=_keepalive(keepalive),
    )


def parse_dump(text: str) -> Dump:
    """Parse ``wg show all dump`` output.

    A malformed line is skipped and described in ``Dump.problems`` (by line number and
    reason, never by content, since a line may carry a private key); the other lines
    are still used.
    """
    order: list[str] = []
    interfaces: dict[str, InterfaceRecord] = {}
    peers: dict[str, list[PeerRecord]] = {}
    problems: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) == 5:
                iface = _interface(fields)
                if iface.name in interfaces:
                    raise ValueError(f"interface {iface.name} listed twice")
                interfaces[iface.name] = iface
                order.append(iface.name)
                peers[iface.name] = []
            elif len(fields) == 9:
                peer = _peer(fields)
                if peer.interface not in interfaces:
                    raise ValueError(f"peer of unknown interface {peer.interface}")
                peers[peer.interface].append(peer)
            else:
                raise ValueError(f"{len(fields)} tab-separated fields, expected 5 or 9")
        except ValueError as exc:
            problems.append(f"line {lineno}: {exc}")
    records = tuple(
        InterfaceRecord(
            name=interfaces[name].name,
            public_key=interfaces[name].public_key,
            listen_port=interfaces[name].listen_port,
            fwmark=interfaces[name].fwmark,
            peers=tuple(peers[name]),
        )
        for name in order
    )
    return Dump(records, tuple(problems))
