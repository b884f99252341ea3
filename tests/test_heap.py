"""The daemon's collector policy (wgtrack/heap.py): no automatic full collection, what survives a
cycle frozen, and one full collection when the frozen objects doubled, so that garbage cycles
frozen while alive are freed after all."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from wgtrack import heap


@pytest.fixture(autouse=True)
def _collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.collect()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.collect()


def test_the_oldest_generation_is_never_collected_on_its_own() -> None:
    heap.tune_collector()
    young, _, oldest = gc.get_threshold()
    assert young == heap.YOUNG_THRESHOLD and oldest >= 2**30


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_what_survives_a_cycle_is_frozen() -> None:
    upkeep = heap.HeapUpkeep(after_added=10**9, slack=10**9, count_every_s=0)
    kept = [_Node() for _ in range(1000)]
    upkeep.cycle_done(0)
    assert gc.get_freeze_count() >= len(kept)


def test_frozen_garbage_cycles_are_freed_once_the_frozen_count_doubles() -> None:
    upkeep = heap.HeapUpkeep(after_added=10**9, slack=1000, count_every_s=0)
    upkeep.cycle_done(0)  # the first settles: everything there is now counts as kept
    baseline = gc.get_freeze_count()
    nodes = [_Node() for _ in range(500)]
    alive = weakref.ref(nodes[0])
    upkeep.cycle_done(0)  # frozen while alive (far from doubled: no collection)
    del nodes
    assert alive() is not None  # garbage now, but frozen: no collection walks it
    grown = [_Node() for _ in range(baseline + 2000)]  # a hub that grew (or a leak)
    upkeep.cycle_done(0)  # the frozen count more than doubled: one full collection
    assert alive() is None
    assert gc.get_freeze_count() >= len(grown)


def test_the_frozen_count_is_looked_at_once_a_minute_at_most() -> None:
    upkeep = heap.HeapUpkeep(after_added=10**9, slack=0)
    upkeep.cycle_done(0)  # the first count, and a full collection (slack 0)
    node = _Node()
    alive = weakref.ref(node)
    upkeep.cycle_done(0)
    del node
    grown = [_Node() for _ in range(gc.get_freeze_count() + 1000)]
    upkeep.cycle_done(0)  # doubled, but counted less than a minute ago: no walk, no collection
    assert alive() is not None and grown


def test_no_full_collection_while_the_frozen_count_holds() -> None:
    upkeep = heap.HeapUpkeep(after_added=10**9, slack=10**9, count_every_s=0)
    node = _Node()
    alive = weakref.ref(node)
    upkeep.cycle_done(0)
    del node
    upkeep.cycle_done(0)
    assert alive() is not None  # a garbage cycle frozen alive stays until the count doubles


def test_settle_young_leaves_the_young_collection_nothing_to_walk() -> None:
    """Between the fast lane's parts: survivors (each probe's new state, replacing a frozen
    one) are frozen at once instead of piling up for a young collection to walk."""
    before = gc.get_freeze_count()
    kept = [_Node() for _ in range(1000)]
    heap.settle_young()
    assert gc.get_count()[0] < 10 and gc.get_freeze_count() >= before + 1000
    assert all(gc.is_tracked(node) for node in kept)
