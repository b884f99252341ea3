"""``[output:influx]``: the line-protocol file that Telegraf's ``inputs.file`` re-reads."""

from __future__ import annotations

import asyncio

from wgtrack.atomic import directory_problem, write_atomic
from wgtrack.config import InfluxFileSettings
from wgtrack.errors import StartupError
from wgtrack.lineproto import render
from wgtrack.snapshot import Snapshot


class InfluxFile:
    """Rewrites one file atomically every cycle, every line with an explicit timestamp."""

    name = "output:influx"

    def __init__(self, settings: InfluxFileSettings) -> None:
        self.settings = settings

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
        await asyncio.to_thread(self._write, snapshot)

    def _write(self, snapshot: Snapshot) -> None:
        write_atomic(self.settings.filename, render(snapshot).encode(), self.settings.mode)

    async def close(self) -> None:
        return None
