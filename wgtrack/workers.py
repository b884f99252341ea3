"""Daemon threads for blocking work, a small pool per owner.

There is no shared default executor: one output's stuck write cannot starve another output,
the probes or the cycle. The threads are daemon threads, so a call stuck forever (a pipe
nobody reads) can never keep the process from exiting; every ``run`` has a deadline that
fires whether or not the call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


_ALL: weakref.WeakSet[Workers] = weakref.WeakSet()


def any_busy() -> bool:
    """True when some worker thread is still inside a call (stuck, perhaps)."""
    return any(w.pending for w in list(_ALL))


class Busy(Exception):
    """The pool is still working on earlier calls (a stalled receiver, disk or pipe)."""


class Workers:
    """``await workers.run(fn, *args, timeout_s=...)`` runs ``fn`` on one of ``threads`` daemon
    threads, started on first use."""

    def __init__(self, name: str, threads: int = 1) -> None:
        self.name = name
        self.size = threads
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pending = 0  # queued or running
        _ALL.add(self)

    @property
    def pending(self) -> int:
        return self._pending

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            finally:
                with self._lock:
                    self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None,
                  refuse_when_busy: bool = False) -> T:
        """Run ``fn(*args)`` off the loop. ``TimeoutError`` after ``timeout_s`` (the call may go
        on in its thread); ``Busy`` at once when ``refuse_when_busy`` and every thread is taken."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if not future.done():
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

        def job() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting coroutine, never lost
                outcome = (False, exc)
            with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                loop.call_soon_threadsafe(settle, *outcome)

        with self._lock:
            if refuse_when_busy and self._pending >= self.size:
                raise Busy(f"{self.name}: still busy with {self._pending} earlier call(s)")
            self._pending += 1
            if len(self._threads) < min(self.size, self._pending):
                thread = threading.Thread(target=self._serve, name=f"wgtrack-{self.name}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)
        if timeout_s is None:
            return await future
        return await asyncio.wait_for(future, timeout_s)
