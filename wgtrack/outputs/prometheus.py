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
from typing import TYPE_CHECKING

from wgtrack.config import PrometheusSettings, split_listen
from wgtrack.errors import StartupError
from wgtrack.promtext import LabelCache, render_chunks
from wgtrack.snapshot import Snapshot

if TYPE_CHECKING:
    import ssl

    from wgtrack.webconfig import Authenticator

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0  # reading the request
SEND_TIMEOUT_S = 60.0  # streaming a (large) exposition to a slow scraper
MAX_HEADER_LINES = 100
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PrometheusExporter:
    """The HTTP endpoint; ``publish`` only swaps the snapshot the collector serves."""

    name = "output:prometheus"

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.snapshot: Snapshot | None = None
        self._labels = LabelCache()
        self._server: asyncio.Server | None = None
        self._ssl: ssl.SSLContext | None = None
        self._auth: Authenticator | None = None

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
        await asyncio.to_thread(self._load_web_config)
        host, port = split_listen(self.settings.listen)
        try:
            self._server = await asyncio.start_server(self._handle, host, port, ssl=self._ssl,
                                                      reuse_address=True, limit=16384)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StartupError(f"[output:prometheus] listen = {self.settings.listen!r}: cannot listen: "
                               f"{reason}") from None
        scheme = "https" if self._ssl else "http"
        log.info("serving metrics on %s://%s%s%s", scheme, self.settings.listen, self.settings.path,
                 " with basic auth" if self._auth else "")

    async def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), REQUEST_TIMEOUT_S + SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a slow, broken or hostile client only loses its own request
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)).decode("latin-1").split()
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = (await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_S)).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
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
            page = f'<html><body><a href="{self.settings.path}">wgtrack metrics</a></body></html>\n'.encode()
            return await self._respond(writer, 200, page, [("Content-Type", "text/html")], head=method == "HEAD")
        return await self._respond(writer, 404, b"not found\n")

    async def _stream_metrics(self, writer: asyncio.StreamWriter, head: bool) -> None:
        """Status line, headers, then the exposition chunk by chunk; the body ends with the
        connection (HTTP/1.1 allows it with ``Connection: close``)."""
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nConnection: close\r\n\r\n".encode())
        if head:
            return await writer.drain()
        snapshot = self.snapshot  # one consistent snapshot for the whole scrape
        for chunk in render_chunks(snapshot, self._labels):
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
        return await asyncio.to_thread(self._auth.check, user, password)

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes,
                       headers: list[tuple[str, str]] | None = None, head: bool = False) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers or []]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else body))
        await writer.drain()
