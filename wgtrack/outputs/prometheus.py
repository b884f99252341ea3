"""``[output:prometheus]``: a scrape endpoint served from the daemon's own event loop.

A scrape streams the latest snapshot's exposition chunk by chunk (``promtext``), yielding to
the loop between chunks, so memory stays bounded and no cycle waits for a big scrape; it never
runs ``wg`` and never waits for a cycle. Before the first cycle, and when ``wg`` fails, it
still answers: ``wgtrack_up`` and the error counters say why.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import logging
import os
import socket
import ssl  # a stand-in until TLS is used (wgtrack/deferred.py)
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wgtrack.errors import StartupError
from wgtrack.outputs import Output
from wgtrack.peerpages import PeerPages
from wgtrack.promtext import LabelCache, render_chunks
from wgtrack.retry import FailureRun
from wgtrack.schema import OutputSpec, absolute_path, enabled_key, listen_address, output_key, split_listen, url_path
from wgtrack.snapshot import Snapshot
from wgtrack.statuspage import Ordered, Timeline
from wgtrack.statuspage import render as render_page
from wgtrack.workers import Workers

if TYPE_CHECKING:
    from wgtrack.webconfig import Authenticator

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0  # reading the whole request: line and headers
SEND_TIMEOUT_S = 60.0  # streaming a (large) exposition to a slow scraper
MAX_HEADER_LINES = 100
MAX_HEAD_BYTES = 8192  # request line and headers together
# Connections served at once; more wait in the kernel's backlog, so a flood can never take the
# file descriptors that `wg` and the outputs need (the unit sets LimitNOFILE far above this).
MAX_CONNECTIONS = 64
AUTH_THREADS = 2  # bcrypt runs here, never on the outputs' or anyone's shared pool
MAX_AUTH_WAITING = 8  # checks queued or running; past that a client is refused at once
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The page loads nothing from anywhere and runs no script: the browser is told so too.
PAGE_HEADERS = [("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
                ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """``[output:prometheus]``: the scrape endpoint (prometheus_wireguard_exporter's port)."""

    enabled: bool = True
    listen: str = ":9586"
    path: str = "/metrics"
    web_config: Path | None = None  # Prometheus web config file: TLS and basic auth


class PrometheusExporter(Output):
    """The HTTP endpoint; ``publish`` only swaps the snapshot the collector serves."""

    name = "output:prometheus"

    def __init__(self, section: str, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.snapshot: Snapshot | None = None
        self._previous: Snapshot | None = None  # for the status page's rates
        self._timeline = Timeline()
        self._ordered = Ordered()  # the table's order, made once per snapshot for every page
        self._peers = PeerPages()
        self._labels = LabelCache()
        self._listeners: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._accept_failures = FailureRun(log, self.name)
        self._ssl: ssl.SSLContext | None = None
        self._auth: Authenticator | None = None
        self._auth_pool = Workers("prometheus-auth", threads=AUTH_THREADS)

    def check(self) -> list[str]:
        where = f"[output:prometheus] listen = {self.settings.listen!r}"
        try:
            self._load_web_config()
        except StartupError as exc:
            return [f"[output:prometheus] web_config: {exc}"]
        host, port = split_listen(self.settings.listen)
        try:
            for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE):
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return []  # most likely the running wgtrack itself: not a problem of this config
            return [f"{where}: cannot listen: {exc.strerror or exc}"]
        return []

    def _load_web_config(self) -> None:
        if self.settings.web_config is not None:
            # ssl, PyYAML and bcrypt cost memory: imported only when a web config is used.
            from wgtrack.webconfig import Authenticator, load

            web = load(self.settings.web_config)
            self._ssl = web.ssl_context
            self._auth = Authenticator(web.users) if web.users else None

    async def start(self) -> None:
        await self._auth_pool.run(self._load_web_config, timeout_s=10.0)
        try:
            self._listeners = _listen(*split_listen(self.settings.listen))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"[output:prometheus] listen = {self.settings.listen!r}: cannot listen: "
                               f"{reason}") from None
        loop = asyncio.get_running_loop()
        self._accepting = [loop.create_task(self._accept(sock)) for sock in self._listeners]
        scheme = "https" if self._ssl else "http"
        log.info("serving metrics on %s://%s%s%s", scheme, self.settings.listen, self.settings.path,
                 " with basic auth" if self._auth else "")

    async def publish(self, snapshot: Snapshot) -> None:
        if self.snapshot is not None and self.snapshot.time_ns < snapshot.time_ns:
            self._previous = self.snapshot
        self.snapshot = snapshot
        self._timeline.record(snapshot)

    async def close(self) -> None:
        """Stop listening at once (a successor may bind the address next); requests under way
        finish within their own deadlines."""
        for task in self._accepting:
            task.cancel()
        for sock in self._listeners:
            sock.close()
        self._accepting, self._listeners = [], []

    async def _accept(self, listener: socket.socket) -> None:
        """Accept only while a connection slot is free: past MAX_CONNECTIONS, clients wait in
        the kernel's backlog and hold none of our descriptors."""
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and friends: back off, say so once per run
                self._slots.release()
                self._accept_failures.failed(str(exc.strerror or exc), "cannot accept connections")
                await asyncio.sleep(0.5)
                continue
            except BaseException:
                self._slots.release()
                raise
            self._accept_failures.recovered("accepting again")
            task = loop.create_task(self._connection(conn))
            self._serving.add(task)
            task.add_done_callback(self._served)

    def _served(self, task: asyncio.Task[None]) -> None:
        self._serving.discard(task)
        self._slots.release()

    async def _connection(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEAD_BYTES)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await asyncio.wait_for(
                loop.connect_accepted_socket(lambda: protocol, conn, ssl=self._ssl), REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError, ssl.SSLError):
            conn.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        await self._handle(reader, writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), REQUEST_TIMEOUT_S + SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a slow, broken or hostile client only loses its own request
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[list[str], dict[str, str]]:
        """The request line and headers: at most MAX_HEAD_BYTES, within REQUEST_TIMEOUT_S in all."""
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            first = await reader.readline()
            total = len(first)
            headers: dict[str, str] = {}
            for _ in range(MAX_HEADER_LINES):
                raw = await reader.readline()
                total += len(raw)
                if total > MAX_HEAD_BYTES:
                    raise ValueError("request head too large")
                line = raw.decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return first.decode("latin-1").split(), headers

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request, headers = await self._read_request(reader)
        if len(request) < 2:
            return await self._respond(writer, 400, b"bad request\n")
        method, target = request[0], request[1].split("?", 1)[0]
        if self._auth is not None and not await self._authorized(headers.get("authorization", "")):
            return await self._respond(writer, 401, b"unauthorized\n",
                                       [("WWW-Authenticate", 'Basic realm="wgtrack"')])
        if method not in ("GET", "HEAD"):
            return await self._respond(writer, 405, b"method not allowed\n")
        if target == self.settings.path:
            return await self._stream_metrics(writer, head=method == "HEAD")
        if target == "/":
            # The status page: the same snapshot and auth as the metrics, no outside asset.
            chunks = render_page(self.snapshot, self._previous, self._timeline, page=_page(request[1]),
                                 ordered=self._ordered)
            return await self._stream(writer, PAGE_HEADERS, chunks, head=method == "HEAD")
        if target.startswith("/peer/"):
            found = await self._peers.page(self.snapshot, target)
            if found is not None:
                return await self._stream(writer, PAGE_HEADERS, found, head=method == "HEAD")
        return await self._respond(writer, 404, b"not found\n")

    async def _stream_metrics(self, writer: asyncio.StreamWriter, head: bool) -> None:
        snapshot = self.snapshot  # one consistent snapshot for the whole scrape
        await self._stream(writer, [("Content-Type", CONTENT_TYPE)], render_chunks(snapshot, self._labels), head)

    @staticmethod
    async def _stream(writer: asyncio.StreamWriter, headers: list[tuple[str, str]], chunks: Iterator[str],
                      head: bool) -> None:
        """Status line, headers, then the body chunk by chunk; the body ends with the
        connection (HTTP/1.1 allows it with ``Connection: close``)."""
        lines = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in headers), "Connection: close"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if head:
            return await writer.drain()
        for chunk in chunks:
            writer.write(chunk.encode())
            await writer.drain()  # also lets the loop run between chunks

    async def _authorized(self, header: str) -> bool:
        assert self._auth is not None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        if self._auth.known_good(user, password):
            return True
        if self._auth_pool.pending >= MAX_AUTH_WAITING:
            return False  # a flood of wrong passwords must not queue up bcrypt without end
        try:
            return await self._auth_pool.run(self._auth.check, user, password, timeout_s=REQUEST_TIMEOUT_S)
        except TimeoutError:
            return False

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                       headers: list[tuple[str, str]] | None = None, head: bool = False) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers or []]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
        await writer.drain()


def _page(target: str) -> int:
    """``?page=N`` of a request target (1 when absent or not a number)."""
    query = urllib.parse.parse_qs(target.partition("?")[2])
    try:
        return int(query.get("page", ["1"])[0])
    except ValueError:
        return 1


def _listen(host: str | None, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address of ``host`` (all when None)."""
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                   flags=socket.AI_PASSIVE):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


SCOPE = "output:prometheus"
SPEC = OutputSpec(SCOPE, PrometheusSettings, (
    enabled_key(SCOPE),
    output_key("listen", "listen", listen_address, SCOPE, "address:port to serve metrics on"),
    output_key("path", "path", url_path, SCOPE, "URL path of the metrics"),
    output_key("web_config", "web_config", absolute_path, SCOPE, "Prometheus web config file (TLS, basic auth)"),
), PrometheusExporter)
