"""Running a program with a deadline: its whole output read, what it prints past the cap
refused, a deadline that fires even when its output never ends, and the last line of stderr
said on a failure."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from wgtrack import wgcmd


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_big_output_is_read_whole_and_the_pipe_is_closed() -> None:
    before = _fds()
    result = asyncio.run(wgcmd.run_program(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo oops >&2"],
                                           10.0))
    assert result.error is None and len(result.stdout) == 3_000_001 and set(result.stdout.strip()) == {"x"}
    assert _fds() == before


def test_output_past_the_cap_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wgcmd, "MAX_STDOUT", 100_000)
    started = time.monotonic()
    result = asyncio.run(wgcmd.run_program(["sh", "-c", "exec cat /dev/zero"], 10.0))
    assert result.error is not None and "printed more than" in result.error and time.monotonic() - started < 5


def test_the_deadline_fires_when_the_output_never_ends() -> None:
    """A child that keeps stdout open after its parent exited: EOF never comes, the deadline
    does."""
    async def run() -> tuple[wgcmd.WgResult, float]:
        started = time.monotonic()
        result = await wgcmd.run_program(["sh", "-c", "sleep 1.5 2>/dev/null & echo partial"], 0.5)
        took = time.monotonic() - started
        await asyncio.sleep(1.5)  # the child ends: its pipe closes before the loop does
        return result, took

    result, took = asyncio.run(run())
    assert result.error is not None and "timed out after 0.5 s" in result.error and took < 1.4


def test_a_failure_says_the_last_line_of_stderr() -> None:
    argv = ["sh", "-c", "echo first >&2; echo 'Unable to access interface' >&2; exit 1"]
    result = asyncio.run(wgcmd.run_program(argv, 5.0))
    assert result.error == "sh -c exited 1: Unable to access interface"
