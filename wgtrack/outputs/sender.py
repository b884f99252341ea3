"""The part that the pushing outputs (webhook, Alertmanager, InfluxDB) share: one background
sender task per output, woken by ``publish``, stopped by ``close``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from wgtrack.httppost import redact


class Sender:
    """Base for outputs whose ``publish`` only queues and whose ``_send_forever`` delivers."""

    name: str

    def __init__(self, url: str) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._target = redact(url)  # what logs may show of the URL

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_forever(), name=self.name)

    async def _send_forever(self) -> None:
        raise NotImplementedError

    async def _stop(self, last_attempt: Callable[[], Awaitable[object]] | None = None) -> None:
        """Stop the sender, then give what is still queued one short last chance.

        The sender is stopped first so that the two never work the same queue at once (a POST
        already under way in its thread may still land: delivery is at least once).
        """
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if last_attempt is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(last_attempt(), 1.0)
