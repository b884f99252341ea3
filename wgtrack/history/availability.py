"""A peer's availability figures, and every peer's as the outputs read them. Apart from the
store's reading (and sqlite): the outputs import this whether or not a store is kept."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

PeerId = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Availability:
    """One peer's figures (None: no time up or down in the period)."""

    day: float | None
    week: float | None
    month: float | None
    days: tuple[float | None, ...]  # the last BAR_DAYS UTC days, oldest first, today last


class Figures(Mapping[PeerId, Availability]):
    """Every peer's figures by (interface, key), held by interface, then key: a tuple per peer
    as the key was 56 bytes a peer (0.5 MB on a 10,000-peer hub), and the outputs only look
    peers up."""

    __slots__ = ("_by_interface", "_count")

    def __init__(self) -> None:
        self._by_interface: dict[str, dict[str, Availability]] = {}
        self._count = 0

    def put(self, pid: PeerId, figures: Availability) -> None:
        here = self._by_interface.setdefault(pid[0], {})
        self._count += pid[1] not in here
        here[pid[1]] = figures

    def __getitem__(self, pid: PeerId) -> Availability:
        return self._by_interface[pid[0]][pid[1]]

    def get(self, pid: PeerId, default: Availability | None = None) -> Availability | None:  # type: ignore[override]
        here = self._by_interface.get(pid[0])
        return default if here is None else here.get(pid[1], default)

    def __iter__(self) -> Iterator[PeerId]:
        return ((iface, key) for iface, here in self._by_interface.items() for key in here)

    def __len__(self) -> int:
        return self._count
