"""The cycle's read of the other namespaces, in parallel and each under its deadline:
userspace WireGuard's sockets asked in-process (``wgtrack.uapi``), else ``wg show all dump``
run in the namespace. Merged into the own namespace's dump with every interface named
``<netns>/<ifname>``: one parse of the merged text then serves them all, so the incremental
dump reader and everything after it see one hub."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from wgtrack import netns, probe, uapi
from wgtrack.retry import FailureRun
from wgtrack.wgcmd import WgResult

if TYPE_CHECKING:
    from wgtrack.workers import Workers

log = logging.getLogger(__name__)

DISCOVER_S = 30.0  # how often the namespaces are looked for again (a walk of /proc)
DISCOVER_TIMEOUT_S = 10.0

RunWg = Callable[[str, list[str], float], Awaitable[WgResult]]


def qualified(name: str, text: str) -> str:
    """``text`` (a dump) with every line's interface named ``<name>/<ifname>``."""
    body = text.rstrip("\n")
    if not body:
        return ""
    prefix = name + "/"
    return prefix + body.replace("\n", "\n" + prefix) + "\n"


class NamespaceReads:
    """Knows the namespaces (found again every DISCOVER_S) and reads them each cycle."""

    def __init__(self, run_wg: RunWg, io: Workers, discover: Callable[[tuple[str, ...]], list[netns.Namespace]]
                 = netns.discover) -> None:
        self._run_wg, self._io, self._discover = run_wg, io, discover
        self.namespaces: dict[str, netns.Namespace] = {}
        self._found_at: float | None = None
        self._without_wg: set[str] = set()  # found through a process, read once, no WireGuard
        self._failures: dict[str, FailureRun] = {}

    async def read(self, wanted: tuple[str, ...], wg_command: str, timeout_s: float, own: WgResult) -> WgResult:
        """``own`` (the own namespace's read) with every other namespace's dump after it. A
        namespace that cannot be read contributes nothing: its interfaces vanish, as one that
        was deleted."""
        if own.error is not None or not wanted:
            return own
        await self._refresh(wanted)
        todo = [ns for name, ns in self.namespaces.items() if name not in self._without_wg]
        results = await asyncio.gather(*(self._read_one(ns, wg_command, timeout_s) for ns in todo))
        parts = [own.stdout if own.stdout.endswith("\n") or not own.stdout else own.stdout + "\n"]
        for ns, result in zip(todo, results, strict=True):
            failures = self._failures.setdefault(ns.name, FailureRun(log, f"netns {ns.name}", logging.WARNING))
            if result.error is not None:
                failures.failed(result.error, "its interfaces leave the outputs until it reads again")
                continue
            failures.recovered("readable again")
            if not result.stdout.strip() and not ns.named:
                self._without_wg.add(ns.name)  # no WireGuard there: not read again until found again
            parts.append(qualified(ns.name, result.stdout))
        return WgResult("".join(parts), None)

    async def _read_one(self, ns: netns.Namespace, wg_command: str, timeout_s: float) -> WgResult:
        """One namespace's dump: userspace WireGuard's sockets asked in-process, else ``wg`` run in it."""
        if ns.uapi is None:
            return await self._run_wg(ns.enter[0], [*ns.enter[1:], wg_command, "show", "all", "dump"], timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                found = await self._io.run(uapi.sockets, ns.uapi, timeout_s=timeout_s)
                answers = await asyncio.gather(*(uapi.ask(path) for _, path in found))
                texts = [await self._io.run(uapi.dump_lines, ifname, answer, timeout_s=timeout_s)
                         for (ifname, _), answer in zip(found, answers, strict=True)]
        except TimeoutError:
            return WgResult("", f"its WireGuard sockets did not answer within {timeout_s:g} s")
        except (OSError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
            return WgResult("", f"reading its WireGuard sockets: {exc}")
        return WgResult("".join(texts), None)

    async def _refresh(self, wanted: tuple[str, ...]) -> None:
        now = asyncio.get_running_loop().time()
        if self._found_at is not None and now - self._found_at < DISCOVER_S:
            return
        self._found_at = now
        try:
            found = await self._io.run(self._discover, wanted, timeout_s=DISCOVER_TIMEOUT_S)
        except (TimeoutError, OSError) as exc:
            log.warning("looking for network namespaces failed: %s", exc)
            return
        before = self.namespaces
        self.namespaces = {ns.name: ns for ns in found}
        netns.register(found)
        self._without_wg.clear()
        for name in sorted(self.namespaces.keys() - before.keys()):
            ns = self.namespaces[name]
            log.info("netns %s: read through %s", name, f"the userspace WireGuard sockets in {ns.uapi}"
                     if ns.uapi else " ".join(ns.enter[:-1]))
        for name in sorted(before.keys() - self.namespaces.keys()):
            log.info("netns %s: gone; its peers leave the outputs", name)
            probe.forget_netns(before[name].net)
            self._failures.pop(name, None)
