"""Runs the ``wg`` binary as an async subprocess, always under a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WgResult:
    """What one ``wg`` run produced; ``error`` is None on success."""

    stdout: str
    error: str | None


async def run_wg(wg_command: str, args: list[str], timeout_s: float) -> WgResult:
    """Run ``wg_command args`` with a deadline. Failure is a result, never an exception."""
    env = dict(os.environ)
    # wg's own DNS retries take ~72 s; we only ever hand it numeric endpoints anyway.
    env["WG_ENDPOINT_RESOLUTION_RETRIES"] = "0"
    try:
        proc = await asyncio.create_subprocess_exec(
            wg_command, *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        return WgResult("", f"cannot run {wg_command}: {exc.strerror or exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return WgResult("", f"{wg_command} {args[0]} timed out after {timeout_s:g} s")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if proc.returncode != 0:
        # wg's stderr names interfaces and errno text, never keys.
        message = err.decode(errors="replace").strip().splitlines()
        detail = message[-1] if message else "no message"
        return WgResult("", f"{wg_command} {args[0]} exited {proc.returncode}: {detail}")
    return WgResult(out.decode(errors="replace"), None)


async def show_all_dump(wg_command: str, timeout_s: float) -> WgResult:
    """``wg show all dump`` (prints private keys: hand the text straight to the parser)."""
    return await run_wg(wg_command, ["show", "all", "dump"], timeout_s)
