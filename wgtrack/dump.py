"""Pure parser for ``wg show all dump``; drops private and preshared keys as it reads.

Everything is validated before use: interface names by the kernel's rules (they end up in
paths), keys, endpoints, allowed IPs and counters. A bad line is skipped; problems are counted
by kind, so any amount of garbage costs bounded memory and one log line per kind.
"""

from __future__ import annotations

import base64
import binascii
import sys

from wgtrack.model import Dump, DumpChange, InterfaceRecord, PeerRecord, parse_cidr, split_endpoint

_NONE = "(none)"
MAX_INT64 = 2**63 - 1
IFNAMSIZ = 16  # the kernel's limit, NUL included
MAX_PROBLEM_KINDS = 32  # distinct kinds kept; the messages are constant, so this is plenty

# A dump is at most wgcmd.MAX_STDOUT: a million peers parse well within this (on a thread of
# its own; the cycle goes on without a parse that takes longer).
PARSE_TIMEOUT_S = 60.0


def valid_ifname(name: str) -> bool:
    """The kernel's rule (dev_valid_name): 1-15 bytes, not '.' or '..', no '/', ':', NUL or
    whitespace. Checked before a name ever becomes part of a path."""
    encoded = name.encode("utf-8", "surrogateescape")
    return (0 < len(encoded) < IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:\0" or c.isspace() for c in name))


def is_public_key(text: str) -> bool:
    """A WireGuard key is 32 bytes in standard base64: 44 characters ending in '='."""
    if len(text) != 44 or not text.endswith("="):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _int_field(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_INT64:
        raise ValueError(f"{what} is not a non-negative 64-bit integer")
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
    parts = tuple(part for part in text.split(",") if part)
    for part in parts:
        if parse_cidr(part) is None:
            raise ValueError("allowed IP is not a CIDR")
    return parts


def valid_netns_name(name: str) -> bool:
    """A network namespace's name as wgtrack accepts it (``ip netns`` names, or its own
    ``<command>-<pid>`` for a process's namespace): 1-64 of letters, digits, ``._-``."""
    return 0 < len(name) <= 64 and name not in (".", "..") and all(c.isascii() and (c.isalnum() or c in "._-")
                                                                   for c in name)


def split_qualified(name: str) -> tuple[str, str]:
    """(namespace, interface) of an interface name; the namespace is "" for wgtrack's own.
    Interfaces of other namespaces are named ``<netns>/<ifname>`` inside wgtrack: the kernel
    never puts a '/' in an interface name, so every name of the own namespace is unchanged."""
    netns, _, ifname = name.rpartition("/")
    return netns, ifname


def interface_labels(name: str) -> list[tuple[str, str]]:
    """The labels (tags) that name an interface in the outputs: ``interface`` alone, as 0.2.0
    wrote it, unless it is of another namespace: then ``netns`` too."""
    netns, ifname = split_qualified(name)
    return [("netns", netns), ("interface", ifname)] if netns else [("interface", name)]


# Every listed peer's key, one string object each: the tracker's key, every record since and
# the history store's figures share it (canonical_key). A table of wgtrack's own, not
# sys.intern: the interpreter's table holds every identifier too, and a hub's keys doubled it
# at about 7,000 peers (0.5 MB more at 10,000, measured). A key goes when its peer does.
_KEYS: dict[str, str] = {}


def canonical_key(text: str) -> str:
    """The string object the dump's records use for this key (``text`` when none lists it)."""
    return _KEYS.get(text, text)


def _name(text: str) -> str:
    netns, slash, ifname = text.rpartition("/")
    if not valid_ifname(ifname) or (slash and not valid_netns_name(netns)):
        raise ValueError("interface name breaks the kernel's rules")
    return sys.intern(text)  # one string for all of a hub's peer records, not one each


def _interface(fields: list[str]) -> InterfaceRecord:
    # fields: ifname private-key public-key listen-port fwmark; fields[1] is never kept.
    name, _private, public, port, fwmark = fields
    name = _name(name)
    if not is_public_key(public):
        raise ValueError("interface public key is malformed")
    return InterfaceRecord(name, public, _optional_port(port), _fwmark(fwmark), ())


def _peer(fields: list[str]) -> PeerRecord:
    # fields: ifname public-key preshared-key endpoint allowed-ips handshake rx tx keepalive;
    # fields[2] (the preshared key) is never kept.
    name, public, _psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
    name = _name(name)
    if not is_public_key(public):
        raise ValueError("peer public key is malformed")
    return PeerRecord(
        interface=name,
        public_key=_KEYS.setdefault(public, public),  # one string per key however often its line changes
        endpoint=_endpoint(endpoint),
        allowed_ips=_allowed_ips(allowed),
        latest_handshake=_int_field(handshake, "latest-handshake"),
        rx_bytes=_int_field(rx, "transfer-rx"),
        tx_bytes=_int_field(tx, "transfer-tx"),
        keepalive_s=_keepalive(keepalive),
    )


def parse_dump(text: str) -> Dump:
    """Parse ``wg show all dump`` output.

    A malformed line is skipped and counted in ``Dump.problems``, one entry per kind of
    problem with its count and first line number (never by content, since a line may carry a
    private key); the other lines are still used.
    """
    return _parse_lines(text.splitlines())[0]


def _parse_lines(lines: list[str]) -> tuple[Dump, list[PeerRecord | bool | None]]:
    """``parse_dump`` of the dump's lines; with it, what each line was: its peer record, True
    for an interface line, None for a blank or bad one (``DumpReader`` keys records by line)."""
    order: list[str] = []
    interfaces: dict[str, InterfaceRecord] = {}
    peers: dict[str, list[PeerRecord]] = {}
    problems: dict[str, list[int]] = {}  # kind -> [count, first line]
    bad_lines = 0
    per_line: list[PeerRecord | bool | None] = [None] * len(lines)
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            fields = line.split("\t")
            if len(fields) == 5:
                iface = _interface(fields)
                if iface.name in interfaces:
                    raise ValueError("interface listed twice")
                interfaces[iface.name] = iface
                order.append(iface.name)
                peers[iface.name] = []
                per_line[lineno - 1] = True
            elif len(fields) == 9:
                peer = _peer(fields)
                if peer.interface not in interfaces:
                    raise ValueError("peer of an interface not listed before it")
                peers[peer.interface].append(peer)
                per_line[lineno - 1] = peer
            else:
                raise ValueError("wrong number of tab-separated fields (expected 5 or 9)")
        except ValueError as exc:
            bad_lines += 1
            kind = str(exc) if str(exc) in problems or len(problems) < MAX_PROBLEM_KINDS else "other problems"
            seen = problems.setdefault(kind[:200], [0, lineno])
            seen[0] += 1
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
    counted = tuple((kind, n, first) for kind, (n, first) in problems.items())
    return Dump(records, counted, bad_lines), per_line


class DumpReader:
    """Reads one dump after another and says what changed since the last (``DumpChange``).

    A line is recognised again by its hash: the dump's lines are hashed and looked up in C,
    and only lines not seen in the last dump are split and parsed, so a 10,000-peer hub whose
    peers are mostly idle costs about what splitting its text costs. Only hashes are kept, never
    a line (a line may hold a preshared key; a 64-bit hash keyed per process gives nothing of it
    away). The first dump, one that adds, drops or changes an interface line, and one with lines
    that do not parse are read whole (``parse_dump``), so problems are counted on every dump as
    before. Used from one thread at a time (the daemon's parse worker).
    """

    def __init__(self) -> None:
        self._peers: dict[int, PeerRecord] = {}  # hash of each peer line of the last dump
        self._interface_lines: frozenset[int] | None = None  # None: the next dump is read whole
        self._interfaces: tuple[InterfaceRecord, ...] = ()

    def read(self, text: str) -> Dump | DumpChange:
        if self._interface_lines is None:
            return self._read_whole(text)
        lines = text.splitlines()
        listed = set(map(hash, lines))  # a str keeps its hash: hashing a line again is a lookup
        known, interface_lines = self._peers, self._interface_lines
        if not interface_lines <= listed:
            return self._read_whole(text)
        # Set arithmetic in C, a step per line (a set's difference with a dict walks the set).
        unseen = listed.difference(known)
        unseen -= interface_lines
        if unseen:
            where = dict(zip(map(hash, lines), range(len(lines)), strict=True))
            fresh = sorted(where[h] for h in unseen)
        else:
            fresh = []
        names = {i.name for i in self._interfaces}
        changed: list[PeerRecord] = []
        added: dict[int, PeerRecord] = {}
        for i in fresh:
            line = lines[i]
            if not line.strip():
                continue
            fields = line.split("\t")
            try:
                if len(fields) != 9:
                    raise ValueError("not a peer line")  # a new interface line, or garbage
                record = _peer(fields)
            except ValueError:
                return self._read_whole(text)
            if record.interface not in names:
                return self._read_whole(text)
            changed.append(record)
            added[hash(line)] = record
        # Every line listed was known, and as many as were known: none went (no walk of them).
        none_went = not unseen and len(listed) - len(interface_lines) == len(known)
        vanished: set[int] = set() if none_went else known.keys() - listed
        still = {(r.interface, r.public_key) for r in changed}
        gone = tuple(pid for pid in ((known[h].interface, known[h].public_key) for h in vanished) if pid not in still)
        for h in vanished:
            del known[h]
        for _, key in gone:
            _KEYS.pop(key, None)
        known.update(added)
        return DumpChange(self._interfaces, tuple(changed), gone)

    def _read_whole(self, text: str) -> Dump:
        lines = text.splitlines()
        dump, per_line = _parse_lines(lines)
        before = self._peers
        kept: dict[tuple[str, str], PeerRecord] = {}  # a line seen before keeps its record (the fast path's check)
        self._peers, interface_lines = {}, []
        for line, record in zip(lines, per_line, strict=True):
            if record is None:
                continue  # a blank line, or one that did not parse
            h = hash(line)
            if record is True:
                interface_lines.append(h)
                continue
            assert isinstance(record, PeerRecord)
            old = before.get(h)
            if old is not None and old == record:
                record = kept[(record.interface, record.public_key)] = old
            self._peers[h] = record
        listed = {r.public_key for r in self._peers.values()}
        for key in {r.public_key for r in before.values()} - listed:
            _KEYS.pop(key, None)
        # A dump with problems is read whole next time too: its problems are counted on every dump.
        self._interface_lines = None if dump.bad_lines else frozenset(interface_lines)
        self._interfaces = tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark, ())
                                 for i in dump.interfaces)
        if kept:
            dump = Dump(tuple(InterfaceRecord(i.name, i.public_key, i.listen_port, i.fwmark,
                                              tuple(kept.get((p.interface, p.public_key), p) for p in i.peers))
                              for i in dump.interfaces), dump.problems, dump.bad_lines)
        return dump

    def read_interface(self, ifname: str, text: str) -> Dump | DumpChange:
        """``wg show <ifname> dump`` (a reader per interface)."""
        return self.read(interface_dump_text(ifname, text))


def interface_dump_text(ifname: str, text: str) -> str:
    """``wg show <ifname> dump`` in the shape of ``all``: the interface column put in front."""
    return "".join(f"{ifname}\t{line}\n" for line in text.splitlines() if line.strip())


def parse_interface_dump(ifname: str, text: str) -> Dump:
    """Parse ``wg show <ifname> dump``: the same lines as ``all``, without the interface column."""
    return parse_dump(interface_dump_text(ifname, text))
