"""ICMP echo probes through the tunnel: one socket per address family serves every probe.

A hub probes thousands of peers. icmplib opened a socket per probe (and Debian 12's icmplib
2.1, which has no asyncio API, needed a thread per probe); here each family has one socket,
opened on first use and watched by the event loop: a probe is a pending entry keyed by its
sequence number and a future, never a task, a thread or a timer of its own. Replies are matched by
identifier (raw sockets; a datagram socket gets only its own) and sequence, and by the
address they come from. Sends are paced by ``probe_rate`` per second for the whole daemon,
so a hub never floods its tunnels; probes of links that are up (a break to detect) go before
those of links that are down (a heal to notice), so that a thousand departed peers never
delay the detection of a live one.

Raw sockets as root or with CAP_NET_RAW; datagram ICMP sockets otherwise, which
``net.ipv4.ping_group_range`` must allow. No dependency.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import math
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wgtrack import icmpsocket, netns
from wgtrack.icmppacket import HEADERS, PAYLOAD, echo_reply, echo_request, family_of
from wgtrack.icmpsocket import raw_sockets
from wgtrack.link import ProbeResult

INTERVAL_S = 0.2  # between the echo requests of one probe (ping_count > 1), as ping(8) allows
DEFAULT_RATE = 1000.0  # echo requests per second, the whole daemon
# Of that, this share (at least one a second) for the slow kind: links that are neither up nor
# in their first minute down (never up, long down, new, idle). Each such probe makes WireGuard
# retry a handshake with a dead address every 5 s for 90 s, about 18 initiations: at a fifth of
# the default rate that was some 3,600 initiations a second (4 Mbit/s) sent to departed peers'
# last addresses; at 10 a second it is at most ~180.
SLOW_SHARE = 0.01
READ_BATCH = 512  # datagrams per wake-up: a flood of ICMP never holds the loop
# Echoes time out in sweeps at most this often, not by a timer each: at 10,000 echoes a second
# a timer per echo (made, pushed on the loop's heap, cancelled and popped) was a fifth of the
# loop's work. A timeout is so late by this much at most.
SWEEP_S = 0.05


def slow_rate(rate: float) -> float:
    """Echo requests a second for the slow kind, under a daemon-wide ``rate``."""
    return min(rate, max(1.0, rate * SLOW_SHARE))


@dataclass(slots=True)
class _Echo:
    target: str
    sent_at: float
    future: asyncio.Future[float | None] | None  # the RTT in ms, None when no reply came in time
    key: tuple[int, int]  # (family, sequence) in the prober's pending map
    expires: float
    on_reply: OnReply | None = None  # instead of the future (``Prober.echo``)

    def settle(self, rtt: float | None) -> None:
        if self.on_reply is not None:
            self.on_reply(rtt, "")
        elif self.future is not None and not self.future.done():
            self.future.set_result(rtt)


OnReply = Callable[[float | None, str], None]  # (RTT in ms, or None and why)


class _Queued:
    """An echo waiting for its slot that nobody awaits (``Prober.echo``): its slot sends it."""

    __slots__ = ("on_reply", "prober", "target", "timeout_s")

    def __init__(self, prober: Prober, target: str, timeout_s: float, on_reply: OnReply) -> None:
        self.prober, self.target, self.timeout_s, self.on_reply = prober, target, timeout_s, on_reply

    def done(self) -> bool:
        return False

    def set_result(self, _: None) -> None:
        self.prober._echo_now(self.target, self.timeout_s, self.on_reply)

    def cancel(self) -> bool:
        return True


class Prober:
    """The daemon's probes: ``await prober.ping(target, count, timeout_s)``."""

    def __init__(self, rate: float = DEFAULT_RATE, raw: bool | None = None,
                 opener: Callable[[int, int, int], socket.socket] = socket.socket) -> None:
        self.rate = rate
        self._opener = opener  # (family, type, proto): netns.open_socket for another namespace
        self.raw = raw_sockets() if raw is None else raw
        self.ident = random.randint(1, 0xFFFF)  # raw sockets see every reply: ours carry this
        self._seq = random.randint(0, 0xFFFF)
        self._socks: dict[tuple[int, bool], socket.socket] = {}  # by (family, don't fragment)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[tuple[int, int], _Echo] = {}  # (family, sequence)
        # Echoes in the order they expire, a queue per timeout (each in sending order, so sorted);
        # answered ones stay until their time and are skipped then.
        self._expiring: dict[float, deque[_Echo]] = {}
        self._sweep_at: asyncio.TimerHandle | None = None
        self._next_send = 0.0
        # Requests waiting for their slot: urgent ones (links up, or in their first minute down) first.
        self._waiting: tuple[deque[asyncio.Future[None] | _Queued], deque[asyncio.Future[None]]] = (deque(), deque())
        self._release_at: asyncio.TimerHandle | None = None
        self._next_slow = 0.0  # the slow kind's requests: at most slow_rate()
        self.sent = 0  # echo requests sent, for the benchmark and the status
        self.replies = 0

    def _ident(self, df: bool) -> int:
        """The identifier a raw socket's echoes carry: another for the DF socket, so that each
        raw socket's filter lets only its own replies in (raw sockets see every reply)."""
        return self.ident ^ 0x8000 if df else self.ident

    def _socket(self, family: int, df: bool = False) -> socket.socket:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests run several): start afresh
            self.close()
            self._loop = loop
        sock = self._socks.get((family, df))
        if sock is None:
            sock = icmpsocket.open_icmp(self._opener, family, self.raw, df, self._ident(df))
            loop.add_reader(sock.fileno(), self._readable, family, sock, self._ident(df))
            self._socks[(family, df)] = sock
        return sock

    def close(self) -> None:
        for sock in self._socks.values():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._socks.clear()
        for timer in (self._release_at, self._sweep_at):
            if timer is not None:
                timer.cancel()
        self._release_at = self._sweep_at = None
        self._expiring.clear()
        told = self._loop.call_soon if self._loop is not None and not self._loop.is_closed() else None
        for queue in self._waiting:
            for slot in queue:
                if isinstance(slot, _Queued) and told:
                    told(slot.on_reply, None, "the prober closed")
                slot.cancel()
            queue.clear()
        for echo in self._pending.values():
            if echo.future is not None and not echo.future.done():
                echo.future.cancel()
            elif echo.on_reply is not None and told:
                told(echo.on_reply, None, "the prober closed")
        self._pending.clear()

    def slow_rate(self) -> float:
        return slow_rate(self.rate)

    async def ping(self, target: str, count: int, timeout_s: float, urgent: bool = True,
                   size: int = 0) -> ProbeResult:
        """Probe ``target`` with ``count`` echo requests; any reply is life. A refused or
        unroutable probe is a failed result, never an exception. ``urgent``: the link is up or
        in its first minute down (its requests go first when the rate limit makes probes wait;
        the others, of links never up, long down, new or idle, get at most ``slow_rate()``).
        ``size``: packets of that many bytes (IP header included), with DF set; 0: small ones."""
        try:
            family, address = family_of(target)
        except ValueError:
            return ProbeResult(ok=False, loss=1.0, reason=f"not an IP address: {target}")
        payload = bytes(max(0, size - HEADERS[family])) if size else PAYLOAD
        waiting: list[asyncio.Future[float | None]] = []
        error = ""
        for i in range(count):
            if i:
                await asyncio.sleep(INTERVAL_S)
            await self._pace(urgent)
            sent = self._send(family, address, timeout_s, payload, size > 0)
            if isinstance(sent, str):
                error = sent
            elif sent.future is not None:
                waiting.append(sent.future)
        if len(waiting) == 1:  # the common probe: one echo, no gather
            rtt = await waiting[0]
            rtts = [] if rtt is None else [rtt]
        else:
            rtts = [rtt for rtt in await asyncio.gather(*waiting) if rtt is not None] if waiting else []
        loss = 1.0 - len(rtts) / count
        if rtts:
            return ProbeResult(ok=True, rtt_ms=round(sum(rtts) / len(rtts), 3), loss=loss, sent=len(waiting),
                               rtts=tuple(rtts))
        return ProbeResult(ok=False, loss=1.0, reason=error or "no reply", sent=len(waiting))

    def echo(self, target: str, timeout_s: float, on_reply: OnReply) -> None:
        """One echo of an urgent probe, no task or future: ``on_reply`` gets its RTT (ms), or None
        and why (reader, timer, failed send, close; never within this call). Paced as ``ping``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next_send and not self._waiting[0] and not self._waiting[1]:
            self._next_send = now + 1.0 / self.rate
            self._echo_now(target, timeout_s, on_reply)
            return
        self._waiting[0].append(_Queued(self, target, timeout_s, on_reply))
        if self._release_at is None:
            self._release_at = loop.call_at(self._next_send, self._release)

    def _echo_now(self, target: str, timeout_s: float, on_reply: OnReply) -> None:
        try:
            family, address = family_of(target)
        except ValueError:
            error = f"not an IP address: {target}"
        else:
            sent = self._send(family, address, timeout_s, on_reply=on_reply)
            if not isinstance(sent, str):
                return
            error = sent
        asyncio.get_running_loop().call_soon(on_reply, None, error)

    async def _pace(self, urgent: bool) -> None:
        """Wait for this request's slot: at most ``rate`` sends a second; urgent ones first,
        each kind in arrival order."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next_send and not self._waiting[0] and not self._waiting[1] \
                and (urgent or now >= self._next_slow):
            self._next_send = now + 1.0 / self.rate
            if not urgent:
                self._next_slow = now + 1.0 / self.slow_rate()
            return
        slot: asyncio.Future[None] = loop.create_future()
        self._waiting[0 if urgent else 1].append(slot)
        if self._release_at is None:
            self._release_at = loop.call_at(self._next_send, self._release)
        await slot

    def _release(self) -> None:
        """Hand out the slots that are due (a timer, not a task), then wait for the next."""
        self._release_at = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_send = max(self._next_send, now - 0.05)  # a late timer catches up a little, no more
        self._next_slow = max(self._next_slow, now - 0.05)
        urgent, slow = self._waiting
        while self._next_send <= now and (urgent or (slow and self._next_slow <= now)):
            from_slow = not urgent
            slot = (urgent or slow).popleft()
            if not slot.done():  # its probe may have been cancelled meanwhile
                slot.set_result(None)
                self._next_send += 1.0 / self.rate
                if from_slow:
                    self._next_slow = max(self._next_slow, now - 0.05) + 1.0 / self.slow_rate()
        if urgent or slow:
            wake = self._next_send if urgent else max(self._next_send, self._next_slow)
            self._release_at = loop.call_at(wake, self._release)

    def _send(self, family: int, target: str, timeout_s: float, payload: bytes = PAYLOAD,
              df: bool = False, on_reply: OnReply | None = None) -> _Echo | str:
        try:
            sock = self._socket(family, df)
        except OSError as exc:
            hint = "" if self.raw else " (datagram ICMP: is net.ipv4.ping_group_range set?)"
            return f"cannot open an ICMP socket: {exc.strerror or exc}{hint}"
        for _ in range(0x10000):  # a free sequence number (wrapping; at most 65,536 in flight)
            self._seq = (self._seq + 1) & 0xFFFF
            if (family, self._seq) not in self._pending:
                break
        else:
            return "too many probes in flight"
        seq = self._seq
        loop = asyncio.get_running_loop()
        try:
            sock.sendto(echo_request(family, self._ident(df), seq, payload), (target, 0))
        except BlockingIOError:
            return "socket buffer full"
        except OSError as exc:
            return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        self.sent += 1
        future: asyncio.Future[float | None] | None = None if on_reply else loop.create_future()
        now = loop.time()
        key = (family, seq)
        echo = self._pending[key] = _Echo(target, now, future, key, now + timeout_s, on_reply)
        queue = self._expiring.get(timeout_s)
        if queue is None:
            queue = self._expiring[timeout_s] = deque()
        queue.append(echo)
        if self._sweep_at is None:
            self._sweep_at = loop.call_at(max(echo.expires, now + SWEEP_S), self._sweep)
        return echo

    def _sweep(self) -> None:
        """Let the echoes whose time is up go unanswered, then wait for the next to expire."""
        self._sweep_at = None
        loop = asyncio.get_running_loop()
        for (family, df), sock in list(self._socks.items()):
            # Replies already here arrived in time: a loop running late must not call them lost.
            self._readable(family, sock, self._ident(df))
        now = loop.time()
        pending, first = self._pending, math.inf
        for timeout_s, queue in list(self._expiring.items()):
            while queue and queue[0].expires <= now:
                echo = queue.popleft()
                if pending.get(echo.key) is echo:
                    del pending[echo.key]
                    echo.settle(None)
            if queue:
                first = min(first, queue[0].expires)
            else:
                del self._expiring[timeout_s]
        if first < math.inf:
            if self._sweep_at is not None:  # a send from a callback above asked for one already
                self._sweep_at.cancel()
            self._sweep_at = loop.call_at(max(first, now + SWEEP_S), self._sweep)

    def _readable(self, family: int, sock: socket.socket, ident: int) -> None:
        now = asyncio.get_running_loop().time()
        for _ in range(READ_BATCH):
            try:
                data, source = sock.recvfrom(2048)  # a full-size reply is cut short: its header is enough
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # an error queued on the socket (an ICMP error to a datagram socket)
            reply = echo_reply(family, data, self.raw)
            if reply is None or (self.raw and reply[0] != ident):
                continue
            echo = self._pending.get((family, reply[1]))
            if echo is None or source[0].split("%", 1)[0] != echo.target:
                continue  # late (its timer already said no), or not from where we sent it
            del self._pending[(family, reply[1])]
            echo.settle((now - echo.sent_at) * 1000)
            self.replies += 1


_shared = Prober()
_in_netns: dict[str, Prober] = {}  # one prober per other namespace, by the path that names it


def _prober(target: str) -> tuple[Prober, str] | str:
    """The prober for ``target`` and its address: the process's, or for ``<netns>/<address>``
    one of that namespace's own; or why there is none."""
    name, _, address = target.rpartition("/")
    if not name:
        return _shared, target
    path = netns.path_of(name)
    if path is None:
        return f"netns {name} is gone"
    prober = _in_netns.get(path)
    if prober is None:
        prober = _in_netns[path] = Prober(_shared.rate, opener=functools.partial(netns.open_socket, path))
    return prober, address


def echo(target: str, timeout_s: float, on_reply: OnReply) -> None:
    """``Prober.echo`` through the prober ``target`` names (the daemon's ``World.echo``)."""
    found = _prober(target)
    try:
        if isinstance(found, str):
            raise OSError(found)
        found[0].echo(found[1], timeout_s, on_reply)
    except OSError as exc:  # the namespace went between the lookup and the socket
        asyncio.get_running_loop().call_soon(on_reply, None, exc.strerror or str(exc))


async def ping(target: str, count: int, timeout_s: float, urgent: bool = True, size: int = 0) -> ProbeResult:
    """A probe through the process's prober (the daemon's ``World.probe``); ``<netns>/<address>``
    probes from inside that namespace, through a prober of its own."""
    found = _prober(target)
    if isinstance(found, str):
        return ProbeResult(ok=False, loss=1.0, reason=found)
    try:
        return await found[0].ping(found[1], count, timeout_s, urgent, size)
    except OSError as exc:  # the namespace went between the lookup and the socket
        return ProbeResult(ok=False, loss=1.0, reason=f"{target}: {exc.strerror or exc}")


def forget_netns(path: str) -> None:
    """A namespace went: its prober's sockets close."""
    prober = _in_netns.pop(path, None)
    if prober is not None:
        prober.close()


def set_rate(rate: float) -> None:
    """``[general] probe_rate``, applied at start and on every reload."""
    for prober in (_shared, *_in_netns.values()):
        prober.rate = rate


def stats() -> tuple[int, int]:
    """(echo requests sent, replies matched) since the start."""
    probers = (_shared, *_in_netns.values())
    return sum(p.sent for p in probers), sum(p.replies for p in probers)
