"""Worker threads: a deadline that fires, and a renderer in a thread that gives way to the loop."""

from __future__ import annotations

import asyncio
import threading
import time
import weakref

import pytest

from wgtrack.workers import Workers, loop_turns


def test_a_turn_waits_until_the_loop_is_free() -> None:
    """A thread's turn returns only once the loop ran: while a handle holds the loop, the
    thread waits instead of taking the GIL from it at each of its system calls."""
    async def go() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        turn = loop_turns(loop, timeout_s=5.0)
        asked, turned_at = threading.Event(), []

        def work() -> None:
            asked.set()
            turn()
            turned_at.append(time.monotonic())

        job = asyncio.ensure_future(Workers("test-turns").run(work, timeout_s=10.0))
        await asyncio.sleep(0)  # the job is queued
        assert asked.wait(5.0)
        time.sleep(0.2)  # a handle holding the loop
        held_until = time.monotonic()
        await job
        return held_until, turned_at[0]

    held_until, turned_at = asyncio.run(go())
    assert turned_at >= held_until


def test_a_turn_is_bounded_and_a_closed_loop_costs_nothing() -> None:
    loop = asyncio.new_event_loop()
    turn = loop_turns(loop, timeout_s=0.1)
    started = time.monotonic()
    turn()  # the loop never runs: the wait ends at its bound
    assert 0.09 <= time.monotonic() - started < 2.0
    loop.close()
    started = time.monotonic()
    turn()
    assert time.monotonic() - started < 0.05


def test_a_stuck_call_times_out() -> None:
    release = threading.Event()

    async def go() -> None:
        await Workers("test-stuck").run(release.wait, 10.0, timeout_s=0.1)

    with pytest.raises(TimeoutError):
        asyncio.run(go())
    release.set()


def test_a_done_call_keeps_nothing_of_its_arguments() -> None:
    """The thread waiting for its next call holds no reference to the last one's arguments (a
    big hub's dump text stayed alive between cycles)."""
    class Text:
        pass

    async def go() -> weakref.ref[Text]:
        workers = Workers("test-keeps")
        text = Text()
        gone = weakref.ref(text)
        await workers.run(lambda t: None, text, timeout_s=5.0)
        del text
        for _ in range(500):  # the thread's own bookkeeping ends just after the result is handed over
            if workers.pending == 0:
                break
            await asyncio.sleep(0.01)
        return gone

    assert asyncio.run(go())() is None
