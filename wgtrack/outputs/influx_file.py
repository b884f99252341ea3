"""``[output:influx]``: the line-protocol file that Telegraf's ``inputs.file`` re-reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wgtrack.atomic import directory_problem, write_atomic
from wgtrack.errors import StartupError
from wgtrack.lineproto import LineCache, render_parts
from wgtrack.outputs import Output
from wgtrack.schema import OutputSpec, enabled_key, file_mode, filename_key, output_key
from wgtrack.snapshot import Snapshot
from wgtrack.workers import Workers, loop_turns


@dataclass(frozen=True, slots=True)
class InfluxFileSettings:
    """``[output:influx]``: the line-protocol file Telegraf's ``inputs.file`` reads."""

    enabled: bool = True
    filename: Path = Path("/var/cache/wg-track_influx.out")
    mode: int = 0o644


WRITE_TIMEOUT_S = 30.0  # a hung disk: the write goes on in its thread, the output reports it


class InfluxFile(Output):
    """Rewrites one file atomically every cycle, every line with an explicit timestamp."""

    name = "output:influx"

    def __init__(self, section: str, settings: InfluxFileSettings) -> None:
        self.settings = settings
        self._worker = Workers("output-influx")
        self._lines = LineCache()  # used only on the worker thread

    def check(self) -> list[str]:
        where = f"[output:influx] filename = {str(self.settings.filename)!r}"
        problem = directory_problem(self.settings.filename, where)
        return [problem] if problem else []

    async def start(self) -> None:
        problems = self.check()
        if problems:
            raise StartupError("; ".join(problems))

    async def publish(self, snapshot: Snapshot) -> None:
        # Rendering 10k peers and an fsync are both too slow for the event loop.
        # A write still hanging from an earlier cycle is reported, not queued behind.
        turn = loop_turns(asyncio.get_running_loop())  # the render gives way to the loop
        await self._worker.run(self._write, snapshot, turn, timeout_s=WRITE_TIMEOUT_S, refuse_when_busy=True)

    def _write(self, snapshot: Snapshot, turn: Callable[[], None]) -> None:
        write_atomic(self.settings.filename, render_parts(snapshot, self._lines, turn), self.settings.mode,
                     durable=False)  # rewritten every cycle (see write_atomic)

    async def close(self) -> None:
        return None


SCOPE = "output:influx"
# On without a section, as in 0.2.0; [DEFAULT]'s filename and mode are its too.
SPEC = OutputSpec(SCOPE, InfluxFileSettings, (
    enabled_key(SCOPE), filename_key(SCOPE),
    output_key("mode", "mode", file_mode, SCOPE, "file mode of the line-protocol file"),
), InfluxFile)
