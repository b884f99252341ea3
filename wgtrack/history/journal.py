"""What the tracker decided since the last cycle, noted for the history store as it happens
(state changes, endpoints, removals), drained once a cycle into one batch.

Noting a change on the event loop makes no object: it appends references to what exists
already (the peer's id and name, its immutable link state, its counters) to one flat list, and
the rows are made from them on the writer's thread, one at a time. A big hub's first cycle
notes a change for every peer; 10,000 rows made on the loop at once were freed a cycle later,
but the memory they took stayed scattered among the peers' own objects: 2.9 MB of RSS for
good (docs/scale.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload


@dataclass(frozen=True, slots=True)
class PeerRow:
    """A peer's row in the store's ``peers`` table: what a restart resumes from."""

    iface: str
    key: str
    name: str | None
    status: str  # a Status value, or "removed"
    since: float  # epoch seconds
    latest_handshake: int
    endpoint: str | None
    rx_base: int
    tx_base: int
    rx: int  # WireGuard's own counter when written (with the base: the exported total)
    tx: int
    degraded: str | None = None
    target: str | None = None  # a link.Target value: whether probes decide (answers) or not

    def values(self) -> tuple[object, ...]:
        return (self.iface, self.key, self.name, self.status, self.since, self.latest_handshake, self.endpoint,
                self.rx_base, self.tx_base, self.rx, self.tx, self.degraded, self.target)


@dataclass(frozen=True, slots=True)
class Change:
    """One status change: the row it leaves and where it came from."""

    time: float
    old: str | None
    reason: str
    row: PeerRow


class LinkFacts(Protocol):
    """What a row reads from a peer's link state (which never changes once made)."""

    @property
    def latest_handshake(self) -> int: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def degraded(self) -> str | None: ...
    @property
    def target(self) -> Any: ...  # an enum: its value is written


# One noted change: time, old status, reason, peer id, name, new status, link state, rx_base,
# tx_base, rx, tx.
WIDTH = 11


class Changes(Sequence[Change]):
    """The changes noted (those from ``start`` to ``stop``), each made when it is read; a slice
    is another such view."""

    def __init__(self, noted: list[Any], start: int = 0, stop: int | None = None) -> None:
        self._noted, self._start = noted, start
        self._stop = len(noted) // WIDTH if stop is None else stop

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> Change: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Change]: ...

    def __getitem__(self, index: int | slice) -> Change | Sequence[Change]:
        size = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(size)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return Changes(self._noted, self._start + start, self._start + max(start, stop))
        if not -size <= index < size:
            raise IndexError(index)
        at = (self._start + index % size) * WIDTH
        time, old, reason, (iface, key), name, new, state, rx_base, tx_base, rx, tx = self._noted[at:at + WIDTH]
        return Change(time, old, reason, PeerRow(iface, key, name, new, time, state.latest_handshake, state.endpoint,
                                                 rx_base, tx_base, rx, tx, state.degraded, state.target.value))


class Journal:
    """Changes and endpoint moves since the last drain, in order."""

    def __init__(self) -> None:
        self._noted: list[Any] = []
        self.endpoints: list[tuple[float, str, str, str | None, str, str]] = []  # time, iface, key, old, new, kind

    @property
    def changes(self) -> Changes:
        return Changes(self._noted)

    def changed(self, time: float, old: str | None, reason: str, pid: tuple[str, str], name: str | None, new: str,
                state: LinkFacts, counters: tuple[int, int, int, int]) -> None:
        """A status change to ``new``: ``counters`` are rx_base, tx_base, rx and tx."""
        self._noted += (time, old, reason, pid, name, new, state, *counters)

    def endpoint(self, time: float, iface: str, key: str, old: str | None, new: str, kind: str) -> None:
        """``kind``: ``set`` (wgtrack applied a re-resolved address) or ``roam`` (the peer moved)."""
        self.endpoints.append((time, iface, key, old, new, kind))

    def drain(self) -> tuple[Changes, list[tuple[float, str, str, str | None, str, str]]]:
        changes, endpoints = Changes(self._noted), self.endpoints
        self._noted, self.endpoints = [], []
        return changes, endpoints
