"""The loop-lag watchdog: the proof that nothing blocks the event loop while it works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

LAG_PERIOD_S = 0.1  # how often the watchdog wakes while there is work on the loop


class LoopWatch:
    """Measures how late the loop wakes a sleeper while a stretch of work (a cycle, a publish)
    is on it. Idle, it sleeps: a wake-up every LAG_PERIOD_S would cost more CPU than a whole
    cycle of a 1,000-peer hub. Work done in one go elsewhere (the fast lane) times itself and
    says so with ``note``."""

    def __init__(self) -> None:
        self.max_lag_s = 0.0
        self._busy = 0  # stretches of work in progress
        self._busy_event = asyncio.Event()

    def note(self, lag_s: float) -> None:
        self.max_lag_s = max(self.max_lag_s, lag_s)

    def take(self) -> None:
        """A cycle's worst lag was reported: start over."""
        self.max_lag_s = 0.0

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """A stretch of work on the loop: the watchdog looks meanwhile."""
        self._busy += 1
        self._busy_event.set()
        try:
            yield
        finally:
            self._busy -= 1
            if not self._busy:
                self._busy_event.clear()

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._busy_event.wait()
            while self._busy:
                before = loop.time()
                await asyncio.sleep(LAG_PERIOD_S)
                self.note(loop.time() - before - LAG_PERIOD_S)
