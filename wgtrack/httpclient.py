"""A small HTTP/1.1 POST client on asyncio streams, for webhooks, Alertmanager and InfluxDB.

Why not urllib in a thread: its timeout is per socket operation, so a receiver that trickles
one byte a second holds the thread (and a stop) forever, and it follows redirects with the
credentials. Here one deadline covers the whole exchange and really fires, a 3xx is a failure,
the response is read only up to its headers, and the environment's proxy is honoured (never
for loopback). Failures are results, never exceptions; their text is redacted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import urllib.parse
from dataclasses import dataclass

from wgtrack.redact import redact_text
from wgtrack.workers import Workers

MAX_HEAD_BYTES = 16384  # status line and headers of a response
_RESOLVER = Workers("http-getaddrinfo", threads=2)  # daemon threads: a dead DNS never blocks exit


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int | None  # None: no HTTP answer at all
    error: str | None  # None on 2xx

    @property
    def ok(self) -> bool:
        return self.error is None


class _Refused(Exception):
    """The exchange cannot go on; the message is safe to log."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env(name: str) -> str:
    """A proxy variable as urllib reads it: the lowercase name wins over the uppercase one."""
    return os.environ.get(name) or os.environ.get(name.upper()) or ""


def proxy_bypassed(host: str) -> bool:
    """Whether ``no_proxy`` exempts ``host``: ``*``, or a listed name or a parent domain of it.
    urllib.request's proxy_bypass says the same (a test holds them equal); it is not imported
    for it, since urllib.request and what it pulls in cost every output 2 MB of RSS."""
    no_proxy = _env("no_proxy").strip()
    if no_proxy == "*":
        return True
    host = host.lower().rstrip(".")
    for entry in no_proxy.split(","):
        name = entry.strip().lower().lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    if is_loopback(host) or proxy_bypassed(host):
        return None
    proxy = _env(f"{scheme}_proxy")
    if not proxy:
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return (parts.hostname, parts.port or 80) if parts.hostname else None


async def _connect(host: str, port: int, timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    infos = await _RESOLVER.run(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM, timeout_s=timeout_s)
    last: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return await asyncio.open_connection(sock=sock, limit=MAX_HEAD_BYTES)
    raise last or OSError(f"no address for {host}")


async def _read_head(reader: asyncio.StreamReader) -> int:
    """Read the status line and headers (at most MAX_HEAD_BYTES); return the status code."""
    status_line = await reader.readline()
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Refused("not an HTTP response")
    total = len(status_line)
    while True:
        line = await reader.readline()
        total += len(line)
        if total > MAX_HEAD_BYTES:
            raise _Refused("response headers too large")
        if line in (b"\r\n", b"\n", b""):
            return int(parts[1])


async def _exchange(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PostResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Refused("not an http(s) URL")
    host, tls = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    authority = f"[{host}]" if ":" in host else host
    authority += "" if parts.port is None else f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    context = ssl.create_default_context() if tls else None
    reader, writer = await _connect(*(proxy or (host, port)), timeout_s)
    try:
        if proxy and tls:
            writer.write(f"CONNECT {authority}:{port} HTTP/1.1\r\nHost: {authority}:{port}\r\n\r\n".encode())
            status = await _read_head(reader)
            if status != 200:
                raise _Refused(f"proxy answered {status} to CONNECT")
        if context is not None:
            await writer.start_tls(context, server_hostname=host)
        elif proxy:
            target = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        lines = [f"POST {target} HTTP/1.1", f"Host: {authority}", f"Content-Length: {len(body)}",
                 "Connection: close"]
        for key, value in headers.items():
            if any(c in key + value for c in "\r\n\0"):
                raise _Refused(f"header {key} has a control character")
            lines.append(f"{key}: {value}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        status = await _read_head(reader)  # the body is never read: nothing in it is needed
    finally:
        writer.close()
    if 200 <= status < 300:
        return PostResult(status, None)
    if 300 <= status < 400:
        return PostResult(status, f"HTTP {status}: redirects are not followed (credentials stay here)")
    return PostResult(status, f"HTTP {status}")


async def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PostResult:
    """POST ``body`` within ``timeout_s`` in all; 2xx is success, anything else a failure result."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _exchange(url, body, headers, timeout_s)
    except TimeoutError:
        return PostResult(None, f"no complete answer within {timeout_s:g} s")
    except _Refused as exc:
        return PostResult(None, str(exc))
    except (OSError, ssl.SSLError, ValueError, UnicodeError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError) as exc:
        return PostResult(None, f"no answer: {redact_text(str(exc) or type(exc).__name__)}")
