"""Simulated time for in-process daemon tests: a clock for ``World`` and an event loop that
follows it. When nothing is ready the loop does not sleep: its clock jumps to the next timer.
Time stands still while a worker thread works (a parse, a file write), so a deadline never
fires early because a thread was slow; then the loop waits for the thread for real."""

from __future__ import annotations

import asyncio
import contextvars
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, TypeVarTuple, Unpack

from wgtrack import workers

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
REAL_SLICE_S = 0.05  # how long to wait for real I/O (a thread's result) before looking again


class SimClock:
    """Monotonic seconds from 0 and a wall clock that moves with them."""

    def __init__(self, wall: float = 1_800_000_000.0) -> None:
        self.now = 0.0
        self._wall0 = wall

    def monotonic(self) -> float:
        return self.now

    def wall_ns(self) -> int:
        return int((self._wall0 + self.now) * 1e9)

    def wall(self) -> float:
        return self._wall0 + self.now


class _Selector(selectors.DefaultSelector):
    def __init__(self, clock: SimClock) -> None:
        super().__init__()
        self.clock = clock
        self.next_timer: Callable[[], float | None] = lambda: None
        # Pools stuck before this loop began (an earlier test's hung write) are not its work.
        self._stuck_before = {id(w) for w in list(workers._ALL) if w.pending}

    def _threads_busy(self) -> bool:
        return any(w.pending for w in list(workers._ALL) if id(w) not in self._stuck_before)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self._threads_busy():
            # Nothing scheduled, or a thread at work: wait for real (its result wakes the loop).
            return list(super().select(REAL_SLICE_S if timeout is None else min(timeout, REAL_SLICE_S)))
        # To the timer's very time: ``now + (when - now)`` can fall a float's width short of it.
        self.clock.now = max(self.clock.now + timeout, self.next_timer() or 0.0)
        return []


class SimLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` is ``clock``'s."""

    def __init__(self, clock: SimClock) -> None:
        selector = _Selector(clock)
        super().__init__(selector)
        self.clock = clock
        self._clock_resolution = 1e-9
        selector.next_timer = self._next_timer

    def _next_timer(self) -> float | None:
        scheduled = self._scheduled  # type: ignore[attr-defined]  # asyncio's heap of TimerHandles
        return scheduled[0].when() if scheduled else None

    def time(self) -> float:
        return self.clock.now

    def call_at(self, when: float, callback: Callable[[Unpack[Ts]], object], *args: *Ts,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        # A timer always lies in the future, past the loop's resolution (within it, asyncio runs
        # a timer at once): a real clock moves on by itself, this one only to the next timer,
        # and code that waits out "deadline - now" (a float's width, at times) would otherwise
        # spin at one instant.
        return super().call_at(max(when, self.clock.now + 2 * self._clock_resolution), callback, *args,
                               context=context)


def run(main: Coroutine[Any, Any, T], clock: SimClock) -> T:
    """``asyncio.run`` in simulated time."""
    loop = SimLoop(clock)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
