"""``[output:stdout]`` / ``--stdout``: the line protocol on standard output each cycle, for
Telegraf's ``inputs.execd`` (logs go to stderr only)."""

from __future__ import annotations

import asyncio
import sys

from wgtrack.lineproto import render
from wgtrack.snapshot import Snapshot


class StdoutLines:
    """Writes every snapshot's lines to stdout; a slow reader blocks a worker thread, not the loop."""

    name = "output:stdout"

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        return None

    async def publish(self, snapshot: Snapshot) -> None:
        await asyncio.to_thread(self._write, render(snapshot))

    @staticmethod
    def _write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    async def close(self) -> None:
        return None
