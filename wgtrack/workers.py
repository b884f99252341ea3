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


# Peers rendered between two turns of the loop by a renderer in a thread (about 1 ms of work)
TURN_EVERY = 40

_ALL: weakref.WeakSet[Workers] = weakref.WeakSet()


def any_busy() -> bool:
    """True when some worker thread is still inside a call (stuck, perhaps)."""
    return any(w.pending for w in list(_ALL))


def loop_turns(loop: asyncio.AbstractEventLoop, timeout_s: float = 0.5) -> Callable[[], None]:
    """For long Python work in a worker thread, called between its slices: each call waits until
    the loop has had a turn. A thread busy with Python competes with the loop for the GIL, and
    the loop loses: every system call it makes (each echo request sent) hands the GIL over
    until the thread's switch interval runs out. Rendering 10,000 peers' lines in a thread
    stretched one of the loop's handles (500 echo requests, 25 ms alone) to 250-530 ms. Given
    way to, the thread's slices run between the loop's handles, one slice a turn at most.
    ``timeout_s`` bounds each wait (a loop too busy to answer must not stall the work)."""
    turned = threading.Event()

    def turn() -> None:
        turned.clear()
        try:
            loop.call_soon_threadsafe(turned.set)
        except RuntimeError:  # the loop is closed: nobody to give way to
            return
        turned.wait(timeout_s)

    return turn


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
                # Not kept until the next call comes: the job holds its arguments (a big hub's
                # dump text, 0.9 MB at 10,000 peers, stayed alive between cycles).
                del job
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
