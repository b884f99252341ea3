"""Service checks through the tunnel, beside (or instead of) ICMP: many peers drop echo requests,
and what operators care about is the service behind the tunnel.

``check =`` in a ``[peer:<key>]`` section takes one or more of, separated by spaces or commas:

- ``tcp://host:port``: the connection is accepted;
- ``http://host[:port]/path`` or ``https://...``: the answer's status is 2xx, or the one given
  after ``#`` (``http://192.0.2.11:8080/health#204``); redirects are not followed; an https
  certificate is not verified (the address is a tunnel address, rarely in a certificate);
- ``dns://name@server``: the server answers a query for ``name`` (type A) with NOERROR and at
  least one record.

Each runs with the peer's ``check_timeout`` as one deadline for the whole exchange. A result is
ok, an RTT in ms (connect, answer head, or DNS answer) and, when not ok, the reason (redacted).
Parsing is kept apart from running, and every failure is a result, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wgtrack import lazydns, netns  # dnspython is imported by the first DNS check, in a worker thread
from wgtrack.redact import redact_text

KINDS = ("tcp", "http", "https", "dns")
MAX_CHECKS = 8  # per peer: each runs every probe period
MAX_HEAD_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Check:
    """One parsed ``check =`` entry; ``text`` is its canonical form (the label in outputs)."""

    kind: str
    host: str
    port: int
    path: str = "/"
    expect: int | None = None  # http(s): the status wanted; None = any 2xx
    name: str = ""  # dns: the name asked for
    netns: str = ""  # the peer's network namespace when it is not wgtrack's own (set when run)

    @property
    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind == "tcp":
            return f"tcp://{host}:{self.port}"
        if self.kind == "dns":
            return f"dns://{self.name}@{host}" + ("" if self.port == 53 else f":{self.port}")
        expect = "" if self.expect is None else f"#{self.expect}"
        return f"{self.kind}://{host}:{self.port}{self.path}{expect}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str  # Check.text
    ok: bool
    rtt_ms: float | None = None
    error: str | None = None


def _address(host: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{what}: the host must be an IP address inside the tunnel, not {host!r}") from None


def parse_check(text: str) -> Check:
    """One entry; ValueError says what is wrong with it."""
    parts = urlsplit(text)
    kind = parts.scheme.lower()
    if kind not in KINDS:
        raise ValueError(f"{text!r}: not one of tcp://, http://, https://, dns://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not 1-65535") from None
    if kind == "dns":
        name, at, server = parts.netloc.rpartition("@")
        if not at or not name or not server:
            raise ValueError(f"{text!r}: dns checks are dns://name@server")
        server_host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server.strip("[]")
        return Check("dns", _address(server_host, text), port or 53, name=name.rstrip(".") + ".")
    if not parts.hostname:
        raise ValueError(f"{text!r}: no host")
    host = _address(parts.hostname, text)
    if kind == "tcp":
        if port is None:
            raise ValueError(f"{text!r}: tcp checks need a port")
        return Check("tcp", host, port)
    expect = None
    if parts.fragment:
        if not parts.fragment.isdigit() or not 100 <= int(parts.fragment) <= 599:
            raise ValueError(f"{text!r}: the expected status after # must be 100-599")
        expect = int(parts.fragment)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ord(c) < 33 for c in path):
        raise ValueError(f"{text!r}: the path has spaces or control characters")
    return Check(kind, host, port or (443 if kind == "https" else 80), path, expect)


def parse_checks(text: str) -> tuple[Check, ...]:
    entries = [e for e in text.replace(",", " ").split() if e]
    if len(entries) > MAX_CHECKS:
        raise ValueError(f"at most {MAX_CHECKS} checks per peer")
    return tuple(parse_check(e) for e in entries)


async def run(check: Check, timeout_s: float) -> CheckResult:
    """Run one check within ``timeout_s`` in all."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            if check.kind == "tcp":
                await _tcp(check)
            elif check.kind == "dns":
                await _dns(check, timeout_s)
            else:
                await _http(check)
    except TimeoutError:
        return CheckResult(check.text, False, error=f"no answer within {timeout_s:g} s")
    except CheckFailed as exc:
        return CheckResult(check.text, False, error=redact_text(str(exc)))  # an RTT only for a success
    except (OSError, ValueError, EOFError) as exc:
        errno = exc.errno if isinstance(exc, OSError) else None
        reason = os.strerror(errno) if errno else (str(exc) or type(exc).__name__)
        return CheckResult(check.text, False, error=redact_text(reason))
    return CheckResult(check.text, True, round((time.monotonic() - started) * 1000, 3))


class CheckFailed(Exception):
    """The service answered, but not as the check wants."""


def _socket_for(check: Check, kind: int) -> socket.socket:
    """A non-blocking socket inside the check's namespace."""
    path = netns.path_of(check.netns)
    if path is None:
        raise CheckFailed(f"netns {check.netns} is gone")
    family = socket.AF_INET6 if ":" in check.host else socket.AF_INET
    sock = netns.open_socket(path, family, kind, 0)
    sock.setblocking(False)
    return sock


async def _connect(check: Check, context: ssl.SSLContext | None = None) -> tuple[asyncio.StreamReader,
                                                                                 asyncio.StreamWriter]:
    """A stream to the check's host and port, from inside its namespace when it has one."""
    if not check.netns:
        return await asyncio.open_connection(check.host, check.port, ssl=context)
    sock = _socket_for(check, socket.SOCK_STREAM)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (check.host, check.port))
        return await asyncio.open_connection(sock=sock, ssl=context,
                                             server_hostname=check.host if context is not None else None)
    except BaseException:
        sock.close()
        raise


async def _tcp(check: Check) -> None:
    _, writer = await _connect(check)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _http(check: Check) -> None:
    context = None
    if check.kind == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await _connect(check, context)
    try:
        host = f"[{check.host}]" if ":" in check.host else check.host
        writer.write(f"GET {check.path} HTTP/1.1\r\nHost: {host}:{check.port}\r\nUser-Agent: wgtrack\r\n"
                     "Connection: close\r\n\r\n".encode("latin-1"))
        await writer.drain()
        line = await reader.readline()
        if len(line) > MAX_HEAD_BYTES or not line:
            raise CheckFailed("no HTTP status line")
        fields = line.decode("latin-1").split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise CheckFailed("not an HTTP answer")
        status = int(fields[1])
        wanted = (status == check.expect) if check.expect is not None else 200 <= status < 300
        if not wanted:
            raise CheckFailed(f"HTTP {status}, wanted {check.expect or '2xx'}")
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _dns(check: Check, timeout_s: float) -> None:
    await lazydns.load()
    import dns.asyncquery
    import dns.message
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(check.name, dns.rdatatype.A)
    if check.netns:
        answer = await _dns_in_netns(check, query)
    else:
        answer = await dns.asyncquery.udp(query, check.host, timeout=timeout_s, port=check.port)
    if answer.rcode() != dns.rcode.NOERROR:
        raise CheckFailed(f"DNS {dns.rcode.to_text(answer.rcode())} for {check.name}")
    if not answer.answer:
        raise CheckFailed(f"DNS answered no record for {check.name}")


async def _dns_in_netns(check: Check, query: Any) -> Any:
    """One UDP exchange from a socket inside the check's namespace (``run`` holds the deadline)."""
    import dns.exception
    import dns.message

    loop = asyncio.get_running_loop()
    with _socket_for(check, socket.SOCK_DGRAM) as sock:
        await loop.sock_connect(sock, (check.host, check.port))
        await loop.sock_sendall(sock, query.to_wire())
        while True:  # a stray datagram is not the answer: wait on for ours
            with contextlib.suppress(dns.exception.FormError):
                answer = dns.message.from_wire(await loop.sock_recv(sock, 65535))
                if query.is_response(answer):
                    return answer
