"""``[output:stdout]`` / ``--stdout``: the line protocol on standard output each cycle, for
Telegraf's ``inputs.execd`` (logs go to stderr only)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from wgtrack.lineproto import LineCache, render_bytes
from wgtrack.outputs import Output
from wgtrack.schema import OutputSpec, enabled_key
from wgtrack.snapshot import Snapshot
from wgtrack.workers import Workers


@dataclass(frozen=True, slots=True)
class StdoutSettings:
    """``[output:stdout]`` (or ``--stdout``): line protocol on stdout for Telegraf's inputs.execd."""

    enabled: bool = True


WRITE_TIMEOUT_S = 10.0


class StdoutLines(Output):
    """Writes every snapshot's lines to stdout from a thread of its own.

    A reader that stops reading blocks that thread in ``write``, never the loop, the cycle or
    another output: later snapshots are refused (the failure is logged once) until the pipe
    drains. ``os.write`` on the raw descriptor, not ``sys.stdout``: a thread stuck inside
    ``sys.stdout`` holds its lock, and the interpreter would wait for that lock at exit.
    """

    name = "output:stdout"

    def __init__(self, section: str = "output:stdout", settings: StdoutSettings | None = None, fd: int = 1) -> None:
        self.fd = fd
        self._worker = Workers("output-stdout")
        self._lines = LineCache()  # used only on the worker thread

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def publish(self, snapshot: Snapshot) -> None:
        await self._worker.run(self._write, snapshot, timeout_s=WRITE_TIMEOUT_S, refuse_when_busy=True)

    def _write(self, snapshot: Snapshot) -> None:
        data = memoryview(render_bytes(snapshot, self._lines))
        while data:
            data = data[os.write(self.fd, data):]

    async def close(self) -> None:
        return None


SCOPE = "output:stdout"
SPEC = OutputSpec(SCOPE, StdoutSettings, (enabled_key(SCOPE),), StdoutLines)
