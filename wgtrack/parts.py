"""Work in parts: a long stretch of work cut where the event loop may take a turn."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import TypeVar

Item = TypeVar("Item")
Done = TypeVar("Done")


def in_parts(visits: Iterator[list[Item]], part_size: int) -> Generator[list[Item], None, int]:
    """The visits' items gathered into one list per ``part_size`` visits (the last part too,
    even empty); returns how many visits there were."""
    gathered: list[Item] = []
    visited = 0
    for items in visits:
        if items:
            gathered.extend(items)
        visited += 1
        if visited % part_size == 0:
            yield gathered
            gathered = []
    yield gathered
    return visited


def finish(parts: Generator[object, None, Done]) -> Done:
    """Run work made in parts to its end, with no turns between them; its result."""
    while True:
        try:
            next(parts)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


async def finish_with_turns(parts: Generator[object, None, Done]) -> Done:
    """Run work made in parts to its end, the event loop taking a turn between parts."""
    while True:
        try:
            next(parts)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await asyncio.sleep(0)
