"""The line-protocol renderer: golden output, and escaping checked against influxdb-client."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.snapshots import KEY_B, T_NS, peer, snapshot
from wgtrack import __version__
from wgtrack.lineproto import line, render
from wgtrack.link import Status
from wgtrack.snapshot import PeerView

GOLDEN = (
    'wgtrack,friendly_name=alice,interface=wg0,peer=xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg\\= '
    'endpoint="198.51.100.11:51820",handshake_age_s=100i,is_up=1i,keepalive_s=25i,'
    'latest_handshake=1794999900i,loss=0,probe_silent=0i,roams=0i,rtt_ms=0.25,status="up:ok",'
    'transfer_rx=1234i,transfer_tx=5678i '
    f'{T_NS}\n'
    'wgtrack,interface=wg0,peer=TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0\\= '
    'is_up=0i,keepalive_s=0i,latest_handshake=0i,probe_silent=0i,roams=0i,status="down",transfer_rx=0i,'
    'transfer_tx=96i '
    f'{T_NS}\n'
    f'wgtrack_interface,interface=wg0 listen_port=51820i,peers=2i,peers_down=1i,peers_idle=0i,peers_up=1i,'
    f'public_key="{KEY_B}",transfer_rx=1234i,transfer_tx=5774i {T_NS}\n'
    'wgtrack_tracker cycle=7i,cycle_duration_s=0.5,interfaces=1i,loop_lag_ms=0,peers=2i,uptime_s=60i,'
    f'version="{__version__}",wg_ok=1i {T_NS}\n'
)


def test_golden_file() -> None:
    down = peer(KEY_B, friendly_name=None, endpoint=None, latest_handshake=0, handshake_age_s=None,
                rx_bytes=0, tx_bytes=96, keepalive_s=0, status=Status.DOWN, rtt_ms=None, loss=None)
    assert render(snapshot(peer(), down)) == GOLDEN


def test_stale_snapshot_has_only_the_heartbeat() -> None:
    text = render(snapshot(wg_ok=False, wg_error='wg show timed out after 5 s'))
    assert text == ('wgtrack_tracker cycle=7i,cycle_duration_s=0.5,interfaces=0i,loop_lag_ms=0,peers=0i,uptime_s=60i,'
                    f'version="{__version__}",wg_error="wg show timed out after 5 s",wg_ok=0i {T_NS}\n')


def test_counters_are_integers() -> None:
    text = render(snapshot(peer()))
    assert "transfer_rx=1234i" in text and "transfer_tx=5678i" in text and "is_up=1i" in text


def test_every_line_has_the_timestamp() -> None:
    for text in render(snapshot(peer(), peer(KEY_B))).splitlines():
        assert text.endswith(f" {T_NS}")


def oracle(measurement: str, tags: dict[str, str], fields: dict[str, object]) -> str:
    # influxdb-client is not in Debian: imported here so the package build can deselect this.
    from influxdb_client.client.write.point import Point

    point = Point(measurement)
    for tag, text in tags.items():
        point.tag(tag, text)
    for name, value in fields.items():
        point.field(name, value)
    point.time(T_NS)
    return point.to_line_protocol()


names = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(",= \"\\\t\n"),
                min_size=1, max_size=12).filter(lambda s: not s.startswith("#"))
values = st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from('"\\ ,='),
                           max_size=12))


@pytest.mark.oracle
@settings(deadline=None)  # the first example imports influxdb-client, which takes a while
@given(names, st.dictionaries(names, names, max_size=3), st.dictionaries(names, values, min_size=1, max_size=4))
def test_escaping_matches_influxdb_client(measurement: str, tags: dict[str, str],
                                          fields: dict[str, object]) -> None:
    assert line(measurement, tags, fields, T_NS) == oracle(measurement, tags, fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["a\nb", "a\r\nb", "x\\", 'q"uote'])
def test_no_raw_newline_anywhere(text: str) -> None:
    rendered = line(text, {"t": text}, {"f": text}, T_NS)
    assert "\n" not in rendered and "\r" not in rendered


def test_cached_lines_equal_fresh_ones_and_follow_changes() -> None:
    import dataclasses

    from wgtrack.lineproto import LineCache

    cache = LineCache()
    first = snapshot(peer(), peer(KEY_B, friendly_name=None))
    assert render(first, cache) == render(first)
    again = dataclasses.replace(first, time_ns=first.time_ns + 10**9)
    assert render(again, cache) == render(again)  # only the timestamp differs: served from the cache
    iface = first.interfaces[0]
    moved = dataclasses.replace(iface, peers=(iface.peers[0].replace(rx_bytes=99),
                                              iface.peers[1]))
    changed = dataclasses.replace(first, interfaces=(moved,))
    assert render(changed, cache) == render(changed) and "transfer_rx=99i" in render(changed, cache)


# One step for the cache: peers (by index into KEYS) in the interface's order, each with its
# rx (a change of rx is a new view), whether it is exported, and whether it has a check.
_KEYS = [f"{i:02d}".ljust(43, "k") + "=" for i in range(8)]
_STEP = st.lists(st.tuples(st.integers(0, len(_KEYS) - 1), st.sampled_from([1, 2]), st.booleans(), st.booleans()),
                 max_size=8, unique_by=lambda t: t[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=8))
def test_a_cached_render_is_a_fresh_render_whatever_came_and_went(steps: list[list[tuple[int, int, bool, bool]]]
                                                                  ) -> None:
    """The cache carries runs of old lines over by position or key: after any sequence of
    peers coming, going, moving, changing and leaving the export, it renders what a fresh
    render does. A view kept from one step to the next is the very same object (as the
    tracker hands out), so it is the cache's to reuse."""
    import dataclasses

    from wgtrack.checks import CheckResult
    from wgtrack.lineproto import LineCache, render_lines

    cache, lines_cache = LineCache(), LineCache()
    made: dict[tuple[int, int, bool, bool], PeerView] = {}
    for n, step in enumerate(steps):
        views = tuple(made.setdefault(spec, peer(_KEYS[spec[0]], friendly_name=f"ü{spec[0]}", rx_bytes=spec[1],
                                                 exported=spec[2],
                                                 checks=(CheckResult("tcp:192.0.2.1:22", True, 1.0),) if spec[3]
                                                 else ()))
                      for spec in step)
        snap = dataclasses.replace(snapshot(*views), time_ns=T_NS + n)
        assert render(snap, cache) == render(snap)
        assert list(render_lines(snap, lines_cache)) == list(render_lines(snap))


def test_values_of_subclasses_render_as_their_base_types() -> None:
    """The exact types take the short way; an enum's value (a str or an int subclass) renders
    as its text or number, never as its name; a non-finite float is left out."""
    import enum

    class Kind(enum.StrEnum):
        UP = "up:ok"

    class Count(enum.IntEnum):
        TWO = 2

    assert line("m", {"t": "a b", "e": ""}, {"s": Kind.UP, "n": Count.TWO, "b": True, "x": float("inf"), "f": 2.0,
                                             "q": 'say "hi"'}, 5) \
        == 'm,t=a\\ b b=true,f=2,n=2i,q="say \\"hi\\"",s="up:ok" 5'


def test_a_big_block_is_stamped_in_pieces_that_make_the_same_file() -> None:
    """A hub's interface block is stamped a piece at a time (no megabyte-sized copy made and
    dropped every cycle): every piece ends a line, each stays well below malloc's 128 KiB mmap
    threshold, and together they are the file that stamping each line gives."""
    from wgtrack.lineproto import STAMP_PIECE, render_lines, render_parts

    keys = [f"{i:05d}".ljust(43, "k") + "=" for i in range(1200)]
    snap = snapshot(*(peer(key, friendly_name=f"host-{i}") for i, key in enumerate(keys)))
    pieces = list(render_parts(snap))
    assert sum(len(piece) for piece in pieces[:-2]) > 4 * STAMP_PIECE  # several pieces of the block
    assert all(piece.endswith(f" {T_NS}\n".encode()) for piece in pieces)
    assert max(len(piece) for piece in pieces) < 128 * 1024
    assert b"".join(pieces) == "".join(text + "\n" for text in render_lines(snap)).encode()
