"""``[output:influxdb]``: direct writes with influxdb-client (InfluxDB 2.x/3.x, 1.8+ with
username/password, VictoriaMetrics), the same schema as the Telegraf file.

influxdb-client is imported only when this output is configured (it costs ~16 MB). Points
wait in a bounded buffer while the server is unreachable and are retried with back-off in a
worker thread; past the bound the oldest are dropped, counted and logged. The token and
password are never logged.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from wgtrack.config import InfluxDBSettings
from wgtrack.errors import StartupError
from wgtrack.lineproto import render_lines
from wgtrack.outputs.sender import Sender
from wgtrack.snapshot import Snapshot

log = logging.getLogger(__name__)

BATCH_LINES = 5000
MAX_BACKOFF_S = 60.0
_PRECISION_DIVISOR = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def with_precision(line: str, precision: str) -> str:
    """Rewrite the ns timestamp at the end of a line to the configured precision."""
    if precision == "ns":
        return line
    head, _, ts = line.rpartition(" ")
    return f"{head} {int(ts) // _PRECISION_DIVISOR[precision]}"


class InfluxDB(Sender):
    name = "output:influxdb"

    def __init__(self, settings: InfluxDBSettings) -> None:
        super().__init__(settings.url)
        self.settings = settings
        self.buffer: collections.deque[str] = collections.deque()
        self._first_seq = 0  # sequence number of buffer[0]: writes and drops both advance it
        self.dropped = 0
        self.written = 0
        self._client: Any = None
        self._write_api: Any = None

    def check(self) -> list[str]:
        try:
            import influxdb_client  # noqa: F401
        except ImportError:
            return ["[output:influxdb] needs influxdb-client, which Debian does not ship: "
                    "pip install influxdb-client (see docs/install.md)"]
        return []

    async def start(self) -> None:
        problems = self.check()
        if problems:
            raise StartupError(problems[0])
        self._client, self._write_api = await asyncio.to_thread(self._connect)
        await super().start()

    def _connect(self) -> tuple[Any, Any]:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        s = self.settings
        token = f"{s.username}:{s.password}" if s.username else (s.token or "")
        client = InfluxDBClient(url=s.url, token=token, org=s.org or "-", timeout=int(s.timeout_s * 1000))
        return client, client.write_api(write_options=SYNCHRONOUS)

    async def publish(self, snapshot: Snapshot) -> None:
        # Rendering thousands of peers is CPU work: off the loop, like the file output's.
        lines = await asyncio.to_thread(self._lines, snapshot)
        self.buffer.extend(lines)
        excess = len(self.buffer) - self.settings.buffer_points
        if excess > 0:
            self._pop_until(self._first_seq + excess)
            self.dropped += excess
            log.warning("%s (%s): buffer full, dropped the %d oldest points (%d dropped so far)",
                        self.name, self._target, excess, self.dropped)
        self._wake.set()

    async def close(self) -> None:
        await self._stop(self._flush_once)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    def _lines(self, snapshot: Snapshot) -> list[str]:
        return [with_precision(line, self.settings.precision) for line in render_lines(snapshot) if line]

    def _pop_until(self, seq: int) -> None:
        while self._first_seq < seq and self.buffer:
            self.buffer.popleft()
            self._first_seq += 1

    def _write(self, lines: list[str]) -> str | None:
        """Blocking write of one batch; an error message, or None on success."""
        try:
            self._write_api.write(bucket=self.settings.bucket, org=self.settings.org or "-", record=lines,
                                  write_precision=self.settings.precision)
        except Exception as exc:  # the client raises many types (ApiException, urllib3 errors ...)
            status = getattr(exc, "status", None)
            text = f"HTTP {status}" if status else type(exc).__name__
            return f"{text}: {str(getattr(exc, 'reason', '') or '')[:200]}"
        return None

    async def _write_batch(self) -> str | None:
        start = self._first_seq
        batch = [self.buffer[i] for i in range(min(BATCH_LINES, len(self.buffer)))]
        error = await asyncio.to_thread(self._write, batch)
        if error is None:
            self._pop_until(start + len(batch))  # only what was written (drops may have moved on)
            self.written += len(batch)
        return error

    async def _flush_once(self) -> None:
        while self.buffer and await self._write_batch() is None:
            pass

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.buffer:
                error = await self._write_batch()
                if error is None:
                    if failures:
                        log.info("%s (%s): writing again after %d failed attempts", self.name, self._target, failures)
                    failures = 0
                    continue
                failures += 1
                if failures == 1:
                    log.warning("%s (%s): write failed, buffering and retrying with back-off: %s",
                                self.name, self._target, error)
                await asyncio.sleep(min(MAX_BACKOFF_S, 0.5 * 2 ** (failures - 1)))
