"""What the pushing outputs (webhook, Alertmanager, InfluxDB) share: one sender task per output
that delivers queued items in order, with a capped back-off and one log line per failure run.

Delivery semantics:
- While the process lives, each item is delivered exactly once: a request in flight is never
  cancelled, not by a stop and not by a reload; it finishes within its own timeout and its
  result is applied before anything else happens. A reloaded output takes over the queue.
- Across a crash or a kill, at least once: an item is removed only after its 2xx, so a request
  that landed just before the process died is sent again by nobody (it is lost with the
  memory), and one whose answer was lost may have landed twice at the receiver.
- On stop, whatever is still queued gets one last chance within the stop deadline; what is
  left is logged as a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any, Generic, TypeVar

from wgtrack.outputs import Output
from wgtrack.redact import redact_url
from wgtrack.retry import Backoff, FailureRun

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Sender(Output, Generic[Item]):
    """Subclasses say what is next (``_next``), how to deliver it (``_deliver``) and what a
    delivery means (``_delivered``); ``publish`` only queues and wakes the sender."""

    name: str
    what = "delivery"

    def __init__(self, name: str, url: str, backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self.name = name
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: tuple[Item, asyncio.Task[str | None]] | None = None
        self._target = redact_url(url)  # what logs may show of the URL
        self.backoff = Backoff(backoff_s, max_backoff_s)
        self.failures = FailureRun(log, f"{self.name} ({self._target})")

    # ---- what a subclass provides ----

    def _next(self) -> Item | None:
        raise NotImplementedError

    async def _deliver(self, item: Item) -> str | None:
        """Deliver one item; an error message (already redacted), or None on success."""
        raise NotImplementedError

    def _delivered(self, item: Item) -> None:
        raise NotImplementedError

    def _give_up(self, item: Item, failures: int) -> bool:
        """True to drop ``item`` after this many failures in a row (default: never)."""
        return False

    def pending(self) -> int:
        """Items still waiting (for the stop log)."""
        return 0

    def take_over(self, old: Any) -> None:
        """A reload replaced ``old`` (same section, new settings): carry its queue over."""

    # ---- the loop ----

    def check(self) -> list[str]:
        return []

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._send_forever(), name=self.name)

    async def _attempt(self, item: Item) -> str | None:
        """One delivery that a cancelled caller cannot interrupt (the item would go twice). The
        request counts itself as it ends (``_ended``), whoever is still waiting for it: a stop's
        cancel can land in the very turn of the answer, when the waiter no longer would."""
        task = asyncio.ensure_future(self._deliver(item))
        self._in_flight = (item, task)
        task.add_done_callback(functools.partial(self._ended, item))
        return await asyncio.shield(task)

    def _ended(self, item: Item, task: asyncio.Task[str | None]) -> None:
        self._in_flight = None
        if not task.cancelled() and task.exception() is None and task.result() is None:
            self._delivered(item)

    async def _send_forever(self) -> None:
        while True:
            item = self._next()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            error = await self._attempt(item)
            if error is None:
                self.backoff.succeeded()
                self.failures.recovered("delivering again")
                continue
            self.failures.failed(error, f"{self.what} failed, retrying with back-off")
            delay = self.backoff.failed()
            if self._give_up(item, self.backoff.failures):
                self.backoff.succeeded()
                continue
            await asyncio.sleep(delay)

    async def _finish_in_flight(self) -> None:
        """Stop the sender; a request in flight still completes and counts."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight is not None:
            await self._in_flight[1]  # it counts itself as it ends

    async def stop_for_successor(self) -> None:
        """For a reload that replaces this output: stop, keeping the queue for the successor."""
        await self._finish_in_flight()

    async def close(self) -> None:
        """Stop: the request in flight completes, the queue gets one last chance, the rest is
        counted. The caller bounds the whole with the stop deadline (cancelling this)."""
        try:
            await self._finish_in_flight()
            while (item := self._next()) is not None:
                if await self._attempt(item) is not None:
                    break
        finally:
            left = self.pending()
            if left:
                log.warning("%s (%s): stopped with %d undelivered %s", self.name, self._target, left, self.unit)

    unit = "items"
