"""Runs the ``wg`` binary (and ``nft``) as an async subprocess, always under a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass

from wgtrack.redact import redact_text


@dataclass(frozen=True, slots=True)
class WgResult:
    """What one ``wg`` run produced; ``error`` is None on success."""

    stdout: str
    error: str | None


MAX_STDOUT = 256 * 1024 * 1024  # ~1 million peers of dump; past it the run is a failure
MAX_STDERR = 64 * 1024


async def _read_capped(stream: asyncio.StreamReader | None, cap: int) -> bytes:
    """Read to EOF, keeping at most ``cap`` bytes; raise OverflowError past it."""
    if stream is None:
        return b""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(1 << 20):
        size += len(chunk)
        if size > cap:
            raise OverflowError
        chunks.append(chunk)
    return b"".join(chunks)


async def run_wg(wg_command: str, args: list[str], timeout_s: float) -> WgResult:
    """Run ``wg_command args`` with a deadline. Failure is a result, never an exception; its
    text (from wg's stderr) is redacted."""
    env = dict(os.environ)
    # wg's own DNS retries take ~72 s; we only ever hand it numeric endpoints anyway.
    env["WG_ENDPOINT_RESOLUTION_RETRIES"] = "0"
    return await run_program([wg_command, *args], timeout_s, env=env)


async def run_program(argv: list[str], timeout_s: float, stdin: bytes | None = None,
                      env: dict[str, str] | None = None) -> WgResult:
    """Run ``argv`` (``stdin`` written to it, else /dev/null) with a deadline that kills it.
    Failure is a result, never an exception; its text (the last line of stderr) is redacted."""
    program, verb = argv[0], argv[1] if len(argv) > 1 else ""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        return WgResult("", f"cannot run {program}: {exc.strerror or exc}")
    try:
        async with asyncio.timeout(timeout_s):
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin)
                with contextlib.suppress(ConnectionError):  # it may exit without reading all of it
                    await proc.stdin.drain()
                proc.stdin.close()
            out, err = await asyncio.gather(_read_capped(proc.stdout, MAX_STDOUT),
                                            _read_capped(proc.stderr, MAX_STDERR))
            await proc.wait()
    except (TimeoutError, OverflowError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, OverflowError):
            return WgResult("", f"{program} {verb} printed more than {MAX_STDOUT >> 20} MiB")
        return WgResult("", f"{program} {verb} timed out after {timeout_s:g} s")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        detail = redact_text(message[-1]) if message else "no message"
        return WgResult("", f"{program} {verb} exited {proc.returncode}: {detail}")
    return WgResult(out.decode(errors="replace"), None)


async def show_all_dump(wg_command: str, timeout_s: float) -> WgResult:
    """``wg show all dump`` (prints private keys: hand the text straight to the parser)."""
    return await run_wg(wg_command, ["show", "all", "dump"], timeout_s)
