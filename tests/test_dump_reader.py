"""``DumpReader``: a tracker fed what changed between dumps ends where one fed every whole dump
ends: the same states, views and events, after any sequence of dumps (peers that come, go,
change, or do nothing; interface lines that change; garbage lines; readings of the time)."""

from __future__ import annotations

import base64
import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from wgtrack import config
from wgtrack.dump import DumpReader, parse_dump
from wgtrack.model import Dump, DumpChange
from wgtrack.snapshot import CycleFacts
from wgtrack.tracker import Tracker

KEYS = [base64.b64encode(bytes([i + 1]) * 32).decode() for i in range(6)]
IFACE_KEY = base64.b64encode(b"\x7f" * 32).decode()
WALL0 = 1_800_000_000


class _Even(random.Random):
    """The same 'random' draw for every sample, whichever order peers are stepped in."""

    def random(self) -> float:
        return 0.5


# One dump: the listen port, each listed peer's (handshake, rx, endpoint index) and a garbage flag.
PEER = st.tuples(st.sampled_from([0, -1, -200, -5000]), st.sampled_from([0, 100, 5000]),
                 st.sampled_from([None, 0, 1]))
DUMP = st.tuples(st.sampled_from([51820, 51821]), st.dictionaries(st.integers(0, len(KEYS) - 1), PEER),
                 st.booleans(), st.sampled_from([1.0, 2.0, 30.0, 200.0]))


def _text(port: int, peers: dict[int, tuple[int, int, int | None]], garbage: bool, wall: int) -> str:
    lines = [f"wg0\tPRIVATE\t{IFACE_KEY}\t{port}\toff"]
    for i, (handshake, rx, endpoint) in sorted(peers.items()):
        hs = wall + handshake if handshake else 0
        ep = "(none)" if endpoint is None else f"198.51.100.{10 + endpoint}:51820"
        psk = "(none)" if i % 2 else base64.b64encode(b"\x55" * 32).decode()
        keepalive = 25 if i == 3 else "off"
        lines.append(f"wg0\t{KEYS[i]}\t{psk}\t{ep}\t192.0.2.{i + 2}/32\t{hs}\t{rx}\t{rx // 2}\t{keepalive}")
    if garbage:
        lines.append("wg0\tnot a peer line")
    return "\n".join(lines) + "\n"


def _picture(tracker: Tracker, now: float, wall: int, cycle: int) -> tuple[object, ...]:
    snap = tracker.snapshot(now, CycleFacts(time_ns=wall * 10**9, cycle=cycle, wg_error=None, cycle_duration_s=0.0,
                                            started_ns=0))
    views = {(i.name, p.public_key): p for i in snap.interfaces for p in i.peers}
    states = {pid: tracker.state_of(pid) for pid in tracker.tracked()}
    events = sorted((e.kind, e.public_key or "", e.message) for e in snap.events)
    totals = [i.totals for i in snap.interfaces]
    return views, states, events, totals


@settings(max_examples=400, deadline=None)
@given(st.lists(DUMP, min_size=1, max_size=12))
# Found by it: a peer stepped for its new line must still be looked at in the next cycle, and a
# probe still waiting for its handshake (a knock) is a clock in the rules (link.timeless).
@example([(51820, {}, False, 1.0), (51820, {0: (0, 0, 0)}, False, 1.0), (51820, {0: (0, 0, 0)}, False, 1.0)])
@example([(51820, {0: (0, 0, 0)}, False, 1.0), (51820, {0: (0, 5000, None)}, False, 1.0),
          (51820, {0: (0, 5000, None)}, False, 1.0), (51820, {0: (0, 5000, None)}, False, 30.0)])
def test_changes_give_what_whole_dumps_give(dumps: list[tuple[int, dict[int, tuple[int, int, int | None]], bool,
                                                              float]]) -> None:
    cfg = config.parse("[general]\nping_interval = 1\n")
    whole, changes = Tracker(cfg, rng=_Even()), Tracker(cfg, rng=_Even())
    reader = DumpReader()
    now, kinds = 100.0, set()
    for cycle, (port, peers, garbage, gap) in enumerate(dumps, 1):
        now += gap
        wall = WALL0 + int(now)
        text = _text(port, peers, garbage, wall)
        read = reader.read(text)
        kinds.add(type(read))
        whole.observe_dump(parse_dump(text), now, float(wall))
        changes.observe_dump(read, now, float(wall))
        assert _picture(changes, now, wall, cycle) == _picture(whole, now, wall, cycle)


def test_an_unchanged_dump_changes_nothing_and_keeps_no_secret() -> None:
    reader = DumpReader()
    text = _text(51820, {0: (-5, 100, 0), 1: (0, 0, None)}, False, WALL0)
    first = reader.read(text)
    assert isinstance(first, Dump) and len(first.interfaces[0].peers) == 2
    again = reader.read(text)
    assert again == DumpChange(again.interfaces, (), ())
    moved = reader.read(_text(51820, {0: (-5, 200, 0)}, False, WALL0))
    assert isinstance(moved, DumpChange)
    assert [p.rx_bytes for p in moved.changed] == [200] and moved.gone == (("wg0", KEYS[1]),)
    psk = base64.b64encode(b"\x55" * 32).decode()
    assert psk in text and psk not in repr(vars(reader))  # hashes only: no line is kept


def test_an_interface_change_or_garbage_is_read_whole() -> None:
    reader = DumpReader()
    reader.read(_text(51820, {0: (0, 0, None)}, False, WALL0))
    assert isinstance(reader.read(_text(51821, {0: (0, 0, None)}, False, WALL0)), Dump)  # listen port moved
    bad = _text(51821, {0: (0, 0, None)}, True, WALL0)
    assert isinstance(reader.read(bad), Dump) and isinstance(reader.read(bad), Dump)  # counted every time
    assert reader.read(bad).bad_lines == 1
    reader.read(_text(51821, {0: (0, 0, None)}, False, WALL0))
    assert isinstance(reader.read(_text(51821, {0: (0, 0, None)}, False, WALL0)), DumpChange)


def test_a_key_is_one_string_object_while_listed_and_leaves_the_table_with_its_peer() -> None:
    """The dump's own key table: every record of a peer, and the history's figures
    (canonical_key), share one string; a peer that goes takes its key out of the table."""
    from wgtrack import dump as dump_mod

    reader = DumpReader()
    first = reader.read(_text(51820, {0: (0, 0, None), 1: (0, 0, None)}, False, WALL0))
    assert isinstance(first, Dump)
    key0 = first.interfaces[0].peers[0].public_key
    fresh = "".join(list(KEYS[0]))  # an equal string that is another object (as sqlite gives)
    assert fresh == key0 and fresh is not key0
    assert dump_mod.canonical_key(fresh) is key0
    moved = reader.read(_text(51820, {0: (-1, 100, 0), 1: (0, 0, None)}, False, WALL0 + 2))
    assert isinstance(moved, DumpChange) and moved.changed[0].public_key is key0  # the line changed, not the key
    gone = reader.read(_text(51820, {1: (0, 0, None)}, False, WALL0 + 4))
    assert isinstance(gone, DumpChange) and gone.gone == (("wg0", key0),)
    assert KEYS[0] not in dump_mod._KEYS and KEYS[1] in dump_mod._KEYS
    whole = reader.read(_text(51821, {}, False, WALL0 + 6))  # the interface changed: read whole
    assert isinstance(whole, Dump) and KEYS[1] not in dump_mod._KEYS
