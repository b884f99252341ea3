"""Where a peer's actions run: within the cycle, in the fast lane, or in the slow queue.

Probes of links that are up finish within the cycle (a break is in this cycle's output). The
fast lane steps the peers whose time has come between cycles (down peers, probe_interval), so
a heal is seen within a second at any cycle_time. Probes of links neither up nor in their first
minute down wait in the slow queue as small entries, not tasks: on a hub thousands of
never-up or long-down links wait minutes at the prober's slow rate.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
from collections.abc import Awaitable, Callable, Container, Coroutine, Generator
from typing import TYPE_CHECKING, Any

from wgtrack import heap, link, parts, probe

if TYPE_CHECKING:
    from wgtrack.actions import Actions
    from wgtrack.config import Config
    from wgtrack.loopwatch import LoopWatch
    from wgtrack.peers import PeerId
    from wgtrack.publisher import Publisher
    from wgtrack.tracker import Tracker

FAST_LANE_TICK_S = 0.25  # the fast lane wakes at most this often
# Peers stepped in one go, then the loop's turn: 10,000 peers probed each second fall due
# together: stepping them all at once held the loop for 300 ms, parts of 250 for up to 80 ms.
FAST_LANE_PART = 100
ROUTE_PART = 500  # a cycle's actions started between two turns of the loop
# A cycle waits this long (at most) for the re-resolutions it started, so that a heal with a
# healthy DNS server is reported in the same cycle; a dead one just finishes in the background.
BACKGROUND_WAIT_MAX_S = 2.0
BACKGROUND_WAIT_SHARE = 0.3  # of cycle_time


class Lanes:
    """The cycle's routing of actions, the fast lane and the slow queue, and the peers each has
    in flight (a probe in flight or queued is never doubled)."""

    def __init__(self, config: Config, tracker: Tracker, actions: Actions, publisher: Publisher, watch: LoopWatch,
                 wall: Callable[[], float], readable: Callable[[], bool], once: bool = False) -> None:
        self.config, self.tracker, self.actions, self.publisher, self.watch = config, tracker, actions, publisher, watch
        self._wall, self._readable, self.once = wall, readable, once
        self.tasks: asyncio.TaskGroup | None = None  # set while the daemon runs
        self._in_flight: dict[PeerId, asyncio.Task[None]] = {}  # fast-lane and slow-queue probes running
        self._fast_due = math.inf  # when the fast lane plans to wake
        self._fast_wake = asyncio.Event()  # something is due sooner than that
        self._queued: dict[PeerId, list[link.Effect]] = {}  # the slow queue's entries
        self._echoing: set[PeerId] = set()  # plain probes in flight with no task (Actions.echo_now)
        self._queue_order: collections.deque[PeerId] = collections.deque()
        self._slow_wake = asyncio.Event()
        self._slow_running = 0
        self._stopped = False  # the daemon is stopping: start nothing more
        tracker.on_due = self.due_at

    def reload(self, old: Config, new: Config) -> None:
        self.config = new

    def cancel(self) -> None:
        """The daemon stops: what runs is cancelled, and nothing starts any more. Echoes still
        in flight answer after this; were their follow-ups started, the task group would wait
        for them, and on a hub saturated with probes they never end (SIGTERM ignored)."""
        self._stopped = True
        for task in self._in_flight.values():
            task.cancel()

    async def route(self, todo: list[tuple[PeerId, link.Effect]]) -> None:
        """Run a cycle's actions, each peer's concurrently: those of up links (and all with
        ``--once``) within the cycle; a probe of a link not urgent waits in the slow queue; the
        rest run on, and what they find is published at once. The cycle waits a little for the
        re-resolutions it started."""
        per_peer: dict[PeerId, list[link.Effect]] = {}
        for pid, action in todo:
            per_peer.setdefault(pid, []).append(action)
        spawned: list[asyncio.Task[None]] = []
        awaited: list[Awaitable[None]] = []
        now = asyncio.get_running_loop().time()
        echoes = _Countdown(self)
        await parts.finish_with_turns(self._dispatch(per_peer, spawned, awaited, now, echoes))
        if echoes.left:
            awaited.append(echoes.done)
        await asyncio.gather(*awaited)
        if spawned:
            budget = min(BACKGROUND_WAIT_MAX_S, BACKGROUND_WAIT_SHARE * self.config.cycle_time_s)
            await asyncio.wait(spawned, timeout=budget)

    def _dispatch(self, per_peer: dict[PeerId, list[link.Effect]], spawned: list[asyncio.Task[None]],
                  awaited: list[Awaitable[None]], now: float, echoes: _Countdown) -> Generator[None, None, None]:
        """Each peer's actions sent on their way, in parts of ROUTE_PART peers: 10,000 up
        peers' probes sent in one go held the loop for 50 ms."""
        for n, (pid, actions) in enumerate(per_peer.items(), 1):
            if n % ROUTE_PART == 0:
                yield
            if self.once or self.tasks is None or self.tracker.is_up(pid):
                if not self._echo_in_cycle(pid, actions, echoes):
                    awaited.append(self.actions.run(pid, actions, spawned))
                continue
            probes: list[link.Effect] = [a for a in actions if isinstance(a, link.Probe)]
            busy = pid in self._in_flight or pid in self._queued
            if probes and (busy or not self.tracker.is_urgent(pid, now)):
                if not busy:
                    self._enqueue(pid, probes)
                # Anything but the probe (a re-resolution the machine now waits for) runs now:
                # were it dropped or queued with the probe, the peer would be left waiting.
                rest: list[link.Effect] = [a for a in actions if not isinstance(a, link.Probe)]
                if rest:
                    self.tasks.create_task(self.publisher.after(self.actions.run(pid, rest, spawned)))
            elif not busy:
                self._start(pid, self.actions.run(pid, actions, spawned))
            else:
                self.tasks.create_task(self.publisher.after(self.actions.run(pid, actions, spawned)))

    def _echo_in_cycle(self, pid: PeerId, actions: list[link.Effect], echoes: _Countdown) -> bool:
        """An up link's plain probe as one echo with no task or coroutine (``Actions.echo_now``),
        counted in ``echoes``, which the cycle awaits: at 10,000 peers probed each second, a
        coroutine, a pacing future and a timer each made the cycle's probes cost a core. False:
        the ordinary path (anything else, ``--once``, or a probe of that peer in flight)."""
        if self.once or self.tasks is None or len(actions) != 1 or not isinstance(actions[0], link.Probe) \
                or pid in self._echoing:
            return False
        self._echoing.add(pid)
        if self.actions.echo_now(pid, actions[0], echoes.finished):
            echoes.left += 1
            return True
        self._echoing.discard(pid)
        return False

    def _start(self, pid: PeerId, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run a peer's work between cycles, marked in flight until it ends (None: stopping)."""
        assert self.tasks is not None
        if self._stopped:
            work.close()
            return None
        task = self.tasks.create_task(self.publisher.after(work))
        self._in_flight[pid] = task
        task.add_done_callback(functools.partial(self._forget, pid))
        return task

    def _forget(self, pid: PeerId, done: asyncio.Task[None]) -> None:
        if self._in_flight.get(pid) is done:
            del self._in_flight[pid]

    # ---- the fast lane ----

    async def fast_lane(self) -> None:
        """Step the peers whose time has come with the time; their machines ask for a probe
        when their interval has passed. It sleeps until the tracker's next due time, at most
        once every FAST_LANE_TICK_S, and not at all while nothing is due: a wake-up costs about
        0.3 ms of CPU, and a hub with no down peer should pay for none."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            due = self._fast_due = max(self.tracker.next_due(), last + FAST_LANE_TICK_S)
            if due > loop.time():
                self._fast_wake.clear()
                try:
                    await asyncio.wait_for(self._fast_wake.wait(), None if due == math.inf else due - loop.time())
                except TimeoutError:
                    pass  # due now (a float's width early, it may be: the clock is not compared again)
                else:
                    continue  # woken: something is due sooner than planned
            started = last = loop.time()
            if not self._readable():
                continue  # nothing current to judge by (the next good cycle steps them)
            await parts.finish_with_turns(self._due_parts(started, loop))

    def _due_parts(self, started: float, loop: asyncio.AbstractEventLoop) -> Generator[None, None, None]:
        """The due peers stepped; more due (a hub's peers probed each second fall due
        together): in parts, the loop's turn between them; for one tick at most, should steps
        keep one due."""
        self._step_due(started, started)
        heap.settle_young()
        while self.tracker.next_due() <= started and loop.time() - started < FAST_LANE_TICK_S:
            yield
            self._step_due(started, loop.time())
            heap.settle_young()

    def _step_due(self, started: float, now: float) -> None:
        """A part of the peers due by ``started``: their probes sent, the rest started."""
        busy = _InEither(self._in_flight, self._queued, self._echoing)
        for pid, action in self.tracker.tick(started, self._wall(), busy, FAST_LANE_PART):
            if isinstance(action, link.Probe):
                if not self.tracker.is_urgent(pid, started):
                    self._enqueue(pid, [action])
                    continue
                self._echoing.add(pid)
                if self.actions.echo_now(pid, action, self._echoed):
                    continue
                self._echoing.discard(pid)
            self._start(pid, self.actions.carry_out(pid, action))
        # Work done in one go holds the loop: as long as it took, anything else waited.
        self.watch.note(asyncio.get_running_loop().time() - now)

    def _echoed(self, pid: PeerId, follow: list[link.Effect], changed: bool) -> None:
        """A task-free probe's result was stepped: its follow-ups (a confirmation burst, a
        search) run as tasks; a change is published at once, as the fast lane's are."""
        self._echoing.discard(pid)
        if follow and self.tasks is not None:
            self._start(pid, self.actions.run(pid, follow, []))
        if changed:
            self.publisher.soon()

    def due_at(self, when: float) -> None:
        """The tracker scheduled a peer's step: wake the fast lane if that is sooner than planned."""
        if when < self._fast_due:
            self._fast_due = when
            self._fast_wake.set()

    # ---- the slow queue ----

    def _enqueue(self, pid: PeerId, actions: list[link.Effect]) -> None:
        if pid in self._queued or pid in self._in_flight:
            return
        self._queued[pid] = actions
        self._queue_order.append(pid)
        self._slow_wake.set()

    def slow_in_flight_cap(self) -> int:
        """Enough slow probes running that the prober's own pacing, not this cap, sets their
        pace: its rate times how long one takes (its requests, its timeout, a second of wait)."""
        settings = self.config.track
        took = settings.ping_count * probe.INTERVAL_S + settings.ping_timeout_s + 1.0
        return max(2, math.ceil(probe.slow_rate(self.config.probe_rate) * took))

    async def slow_lane(self) -> None:
        """Starts the queued probes in their order, no more at once than the cap."""
        while True:
            while not self._queue_order or self._slow_running >= self.slow_in_flight_cap():
                self._slow_wake.clear()
                await self._slow_wake.wait()
            pid = self._queue_order.popleft()
            actions = self._queued.pop(pid, None)
            if actions is None or pid in self._in_flight:
                continue
            started = self._start(pid, self.actions.run(pid, actions, []))
            if started is not None:
                self._slow_running += 1
                started.add_done_callback(self._slow_done)

    def _slow_done(self, _task: asyncio.Task[None]) -> None:
        self._slow_running -= 1
        self._slow_wake.set()


class _Countdown:
    """A cycle's task-free echoes: ``done`` when the last one's result has been stepped. Its
    follow-ups (a confirmation burst) run on as the fast lane's do, and publish what they find."""

    __slots__ = ("done", "lanes", "left")

    def __init__(self, lanes: Lanes) -> None:
        self.lanes, self.left = lanes, 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finished(self, pid: PeerId, follow: list[link.Effect], changed: bool) -> None:
        self.lanes._echoing.discard(pid)
        if follow:
            self.lanes._start(pid, self.lanes.actions.run(pid, follow, []))
        self.left -= 1
        if self.left <= 0 and not self.done.done():
            self.done.set_result(None)


class _InEither:
    """Peers in either of two maps (probes in flight, probes queued), without a set made of both."""

    def __init__(self, *maps: Container[PeerId]) -> None:
        self.maps = maps

    def __contains__(self, pid: object) -> bool:
        return any(pid in m for m in self.maps)
