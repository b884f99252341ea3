"""``[output:influxdb]``: direct writes to ``/api/v2/write`` (InfluxDB 2.x/3.x, 1.8+ with
username/password, VictoriaMetrics), the same schema as the Telegraf file.

The write API is one POST of line protocol, so it goes through wgtrack's own HTTP client
(``httpclient``): one deadline per request that really fires, no redirects, no extra
dependency (influxdb-client cost about 16 MB and ran its requests in threads that a stuck
server could hold). Points wait in a bounded buffer while the server is unreachable and are
retried with a capped back-off; past the bound the oldest are dropped, counted and logged.
The token and password are never logged.
"""

from __future__ import annotations

import collections
import json
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wgtrack.httpclient import post
from wgtrack.lineproto import LineCache, render_lines
from wgtrack.outputs.sender import Sender
from wgtrack.schema import OutputSpec, choice, http_url, int_between, nonempty, output_key, timeout_key
from wgtrack.snapshot import Snapshot
from wgtrack.workers import Workers

if TYPE_CHECKING:
    from wgtrack.history.outbox import Outbox

log = logging.getLogger(__name__)

BATCH_LINES = 5000
MAX_BACKOFF_S = 60.0
_PRECISION_DIVISOR = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class InfluxDBSettings:
    """``[output:influxdb]``: direct writes to ``/api/v2/write``."""

    url: str = ""
    token: str | None = None
    org: str | None = None
    bucket: str = ""  # InfluxDB 1.8+: "database/retention_policy"
    precision: str = "ns"
    username: str | None = None  # 1.8+: with password instead of a token
    password: str | None = None
    timeout_s: float = 5.0
    buffer_points: int = 100_000


def with_precision(line: str, precision: str) -> str:
    """Rewrite the ns timestamp at the end of a line to the configured precision."""
    if precision == "ns":
        return line
    head, _, ts = line.rpartition(" ")
    return f"{head} {int(ts) // _PRECISION_DIVISOR[precision]}"


Batch = tuple[int, list[str]]  # (sequence number of the first line, the lines)


class InfluxDB(Sender[Batch]):
    what = "write"
    unit = "points"

    def __init__(self, section: str, settings: InfluxDBSettings) -> None:
        super().__init__(section, settings.url, 0.5, MAX_BACKOFF_S)
        self.settings = settings
        self.buffer: collections.deque[str] = collections.deque()
        self._first_seq = 0  # sequence number of buffer[0]: writes and drops both advance it
        self.dropped = 0
        self.written = 0
        self._outbox: Outbox | None = None
        self._render = Workers("influxdb-render")
        self._line_cache = LineCache()  # used only on the render thread
        query = {"bucket": settings.bucket, "precision": settings.precision, "org": settings.org or "-"}
        self._write_url = settings.url.rstrip("/") + "/api/v2/write?" + urllib.parse.urlencode(query)
        token = f"{settings.username}:{settings.password}" if settings.username else (settings.token or "")
        self._headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": f"Token {token}"}

    async def publish(self, snapshot: Snapshot) -> None:
        # Rendering thousands of peers is CPU work: off the loop, like the file output's.
        self.add_lines(await self._render.run(self._lines, snapshot, timeout_s=30.0))

    def add_lines(self, lines: list[str]) -> None:
        self.buffer.extend(lines)
        excess = len(self.buffer) - self.settings.buffer_points
        if excess > 0:
            self._pop_until(self._first_seq + excess)
            self.dropped += excess
            log.warning("%s (%s): buffer full, dropped the %d oldest points (%d dropped so far)",
                        self.name, self._target, excess, self.dropped)
        self._wake.set()

    def take_over(self, old: object) -> None:
        if isinstance(old, InfluxDB):
            self.add_lines(list(old.buffer))

    def keep_in(self, outbox: Outbox, section: str) -> None:
        """Points still buffered at a stop are kept in the store and written after the start
        (a crash loses them: they are rendered every cycle, too many to keep as they come)."""
        self._outbox = outbox
        for item_id, text in outbox.take(section, 1):
            outbox.done(item_id)
            try:
                lines = [str(line) for line in json.loads(text)]
            except (ValueError, TypeError):
                continue
            log.info("%s: %d point(s) from before the restart buffered", self.name, len(lines))
            self.add_lines(lines)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._outbox is not None and self.buffer:
                self._outbox.put(self.name, json.dumps(list(self.buffer)))

    def pending(self) -> int:
        return len(self.buffer)

    def _lines(self, snapshot: Snapshot) -> list[str]:
        return [with_precision(line, self.settings.precision) for line in render_lines(snapshot, self._line_cache)
                if line]

    def _pop_until(self, seq: int) -> None:
        while self._first_seq < seq and self.buffer:
            self.buffer.popleft()
            self._first_seq += 1

    def _next(self) -> Batch | None:
        if not self.buffer:
            return None
        return self._first_seq, [self.buffer[i] for i in range(min(BATCH_LINES, len(self.buffer)))]

    async def _deliver(self, batch: Batch) -> str | None:
        body = "\n".join(batch[1]).encode() + b"\n"
        return (await post(self._write_url, body, self._headers, self.settings.timeout_s)).error

    def _delivered(self, batch: Batch) -> None:
        self._pop_until(batch[0] + len(batch[1]))  # only what was written (drops may have moved on)
        self.written += len(batch[1])


def _credentials(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    if ("username" in values) != ("password" in values):
        return [("username", "needs password, and password username")]
    return []


SCOPE = "output:influxdb"
SPEC = OutputSpec(SCOPE, InfluxDBSettings, (
    output_key("url", "url", http_url, SCOPE, "the server's base URL", secret=True),
    output_key("token", "token", nonempty, SCOPE, "API token (InfluxDB 2.x/3.x)", secret=True),
    output_key("org", "org", nonempty, SCOPE, "organisation (InfluxDB 2.x)"),
    output_key("bucket", "bucket", nonempty, SCOPE, "bucket; for InfluxDB 1.8+ database/retention_policy"),
    output_key("precision", "precision", choice("ns", "us", "ms", "s"), SCOPE, "timestamp precision"),
    output_key("username", "username", nonempty, SCOPE, "InfluxDB 1.8+ user (with password)"),
    output_key("password", "password", nonempty, SCOPE, "InfluxDB 1.8+ password", secret=True),
    timeout_key(SCOPE),
    output_key("buffer_points", "buffer_points", int_between(1, 10_000_000, "the buffer lives in memory"), SCOPE,
               "points kept while the server is unreachable; the oldest are dropped beyond"),
), InfluxDB, required=("url", "bucket"), check=_credentials)
