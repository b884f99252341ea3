"""The nflog trigger: a WireGuard handshake arriving at a listen port reads that interface now.

The cycle reads every interface every ``cycle_time``; a connecting peer's first handshake is
then seen up to a whole cycle late. With ``[trigger:nflog] group = N`` and an nft rule logging
the listen ports to that group, each handshake message schedules one read of its interface:
after FIRST_READ_S (the responder records the handshake when the initiator's first packet
follows the response, one round trip later), again after RETRY_S if no handshake was new yet,
and never more often than ``min_interval`` per interface, so a busy hub costs at most one
``wg show <if> dump`` per interface per ``min_interval``.

A missing or wrong nft rule would fail silently; so each cycle compares: handshakes the cycle
found (which the trigger should have shown first) while the group logged nothing for
SILENCE_S are said in the log, once, with the rule to add.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from wgtrack.nflog import NflogSocket

log = logging.getLogger(__name__)

FIRST_READ_S = 0.1
RETRY_S = 0.4
SILENCE_S = 300.0
READ_BATCH = 256  # datagrams per wake-up: the loop is never held by a flood


class HandshakeTrigger:
    """Owns the nflog socket and the per-interface read schedule; the daemon passes in how to
    find an interface by port, how to read one, and how to start a task."""

    def __init__(self, group: int, min_interval_s: float, ports: Callable[[], dict[int, str]],
                 read: Callable[[str], Awaitable[int]],
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
                 silence_s: float = SILENCE_S,
                 opener: Callable[[int, int, int], socket.socket] = socket.socket) -> None:
        self.group = group
        self.min_interval_s = min_interval_s
        self._ports = ports
        self._read = read
        self._spawn = spawn
        self._silence_s = silence_s
        self._opener = opener
        self._sock: NflogSocket | None = None
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._last_read: dict[str, float] = {}
        self.packets = 0  # logged packets received
        self.handshakes = 0  # of which WireGuard handshake messages
        self.reads = 0
        self._quiet_since = 0.0  # loop time of the last logged packet (or the start)
        self._handshakes_mark = 0  # the cycles' handshake count at that time
        self._warned = False

    def start(self) -> None:
        """Bind the group (raises OSError with a reason) and watch the socket."""
        loop = asyncio.get_running_loop()
        self._sock = NflogSocket(self.group, self._opener)
        loop.add_reader(self._sock.fileno(), self._readable)
        self._quiet_since = loop.time()

    def stop(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            found, packets, overrun = self._sock.read(READ_BATCH)
        except OSError as exc:
            log.warning("nflog group %d: reading failed: %s", self.group, exc)
            return
        if packets or overrun:
            self.packets += packets
            self._quiet_since = asyncio.get_running_loop().time()
        self.handshakes += len(found)
        ports = self._ports()
        # overrun: the kernel dropped messages, so any interface may have had a handshake
        targets = set(ports.values()) if overrun else {ports[h.dport] for h in found if h.dport in ports}
        for ifname in targets:
            self.request(ifname)

    def request(self, ifname: str) -> None:
        """Read ``ifname`` soon; a read already planned absorbs this request."""
        if ifname in self._pending:
            return
        now = asyncio.get_running_loop().time()
        delay = max(FIRST_READ_S, self._last_read.get(ifname, -1e18) + self.min_interval_s - now)
        task = self._spawn(self._read_soon(ifname, delay))
        self._pending[ifname] = task
        task.add_done_callback(lambda done: self._forget(ifname, done))

    def _forget(self, ifname: str, done: asyncio.Task[None]) -> None:
        if self._pending.get(ifname) is done:
            del self._pending[ifname]

    async def _read_soon(self, ifname: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(delay)
        for attempt in range(2):
            self._last_read[ifname] = loop.time()
            self.reads += 1
            try:
                if await self._read(ifname) or attempt:
                    return
            except Exception:  # a bug must not take the daemon's task group down with it
                log.exception("triggered read of %s failed", ifname)
                return
            await asyncio.sleep(max(RETRY_S, self.min_interval_s))

    def cycle(self, handshakes: int) -> None:
        """Called once a cycle with the count of new handshakes cycles have found so far."""
        now = asyncio.get_running_loop().time()
        if self.packets and now - self._quiet_since < self._silence_s:
            if self._warned:
                log.info("nflog group %d: packets are logged again", self.group)
                self._warned = False
            self._handshakes_mark = handshakes
            return
        missed = handshakes - self._handshakes_mark
        if missed > 0 and now - self._quiet_since >= self._silence_s and not self._warned:
            self._warned = True
            ports = [str(p) for p in sorted(self._ports())] or ["<listen port>"]
            log.warning("nflog group %d: nothing logged for %g s while %d handshake(s) completed: are the nft rules "
                        "missing? docs/link-state.md has them, for port %s and group %d (\"The nflog trigger\": "
                        "they log handshake messages only)", self.group, round(now - self._quiet_since, 1), missed,
                        ports[0] if len(ports) == 1 else "{ " + ", ".join(ports) + " }", self.group)
