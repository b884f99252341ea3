"""The history store at its edges, in-process: the schema and its migrations from the first,
a corrupt, foreign or newer file, the roll-up's time in each state, the writer when the disk
refuses, the outbox, and a restart resumed through the tracker (no event for what did not
change; one, saying so, for what changed while stopped)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from wgtrack import config, link
from wgtrack.events import Event
from wgtrack.history import db, memory, reading, rollup
from wgtrack.history.journal import Journal, PeerRow
from wgtrack.history.outbox import Outbox
from wgtrack.history.recorder import Recorder
from wgtrack.history.writer import Batch, Writer
from wgtrack.model import Dump, InterfaceRecord, PeerRecord
from wgtrack.resume import Resumption
from wgtrack.tracker import Tracker

KEY_A = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
KEY_B = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
WALL = 1_800_000_000.0


def _first_schema(path: Path) -> None:
    """A store as the first schema made it, with a row."""
    conn = db.connect(path)
    conn.execute(f"PRAGMA application_id = {db.APPLICATION_ID}")
    conn.executescript(db.MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO peers VALUES ('wg0', ?, 'a', 'up:ok', 1.0, 5, NULL, 0, 0, 10, 20)", (KEY_A,))
    conn.execute("INSERT INTO transitions (time, iface, key, old, new) VALUES (1.0, 'wg0', ?, NULL, 'up:ok')",
                 (KEY_A,))
    conn.close()


def test_migrates_from_the_first_schema_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    _first_schema(path)
    conn = db.open_store(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.VERSION == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT status, rx, degraded FROM peers").fetchall() == [("up:ok", 10, None)]
    assert conn.execute("SELECT count(*) FROM transitions").fetchone()[0] == 1
    conn.execute("INSERT INTO outbox (section, item) VALUES ('output:webhook', '{}')")  # version 2's table
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_new_store_is_made_whole_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.db"
    db.open_store(path).close()
    conn = db.open_store(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == db.APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.VERSION
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -db.CACHE_KIB  # not sqlite's 2 MiB


@pytest.mark.parametrize("kind", ["garbage", "foreign"])
def test_corrupt_or_foreign_file_is_moved_aside(tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "history.db"
    if kind == "garbage":
        path.write_bytes(b"this is not a database at all" * 200)
    else:
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE notes (x)")
        other.commit()
        other.close()
    with caplog.at_level(logging.ERROR):
        conn = db.open_store(path)
    (aside,) = tmp_path.glob("history.db.bad-*[0-9]")
    assert aside.stat().st_size > 0
    assert "moved aside" in caplog.text and str(aside) in caplog.text
    assert conn.execute("SELECT count(*) FROM peers").fetchone()[0] == 0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    db.open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(db.HistoryError, match="schema version 99 was written by a newer wgtrack"):
        db.open_store(path)
    assert conn is not None and path.exists() and not list(tmp_path.glob("*.bad-*"))  # untouched


def _store(tmp_path: Path) -> sqlite3.Connection:
    return db.open_store(tmp_path / "history.db")


def _change(conn: sqlite3.Connection, t: float, key: str, old: str | None, new: str) -> None:
    conn.execute("INSERT INTO transitions (time, iface, key, old, new) VALUES (?, 'wg0', ?, ?, ?)", (t, key, old, new))
    conn.execute("INSERT OR REPLACE INTO peers VALUES ('wg0', ?, NULL, ?, ?, 0, NULL, 0, 0, 0, 0, NULL, NULL)",
                 (key, new, t))


def test_seconds_in_states_merge_each_peers_changes_in_key_order(tmp_path: Path) -> None:
    """Peers walked one at a time, their changes merged from a second cursor: changes made in
    any order of peers land with their own peer; a removed peer's bytes still count."""
    conn = _store(tmp_path)
    h = 1_800_000_000.0 // 3600 * 3600
    keys = [f"{c * 43}=" for c in "ZMBQA"]  # not in key order, nor in the order of their changes
    for n, key in enumerate(keys):
        _change(conn, h + 100 * n, key, None, "up:ok")
    for n, key in enumerate(reversed(keys)):
        _change(conn, h + 1000 + 100 * n, key, "up:ok", "down")
    _change(conn, h + 2000, KEY_B, None, "removed")
    secs = dict(rollup.seconds_in_states(conn, h, h + 3600))
    assert set(secs) == {("wg0", k) for k in keys}  # the removed peer's time is in no bucket
    for n, key in enumerate(keys):
        up = 1000 + 100 * (len(keys) - 1 - n) - 100 * n
        assert secs[("wg0", key)] == [float(up), 0.0, 3600.0 - 100 * n - up, 0.0]
    assert rollup.rollup(conn, h, h + 3600, {("wg0", KEY_B): (7, 8)}) == len(keys) + 1
    assert conn.execute("SELECT rx, tx, up_s + down_s + idle_s FROM daily WHERE key = ?", (KEY_B,)).fetchone() \
        == (7, 8, 0.0)


def test_seconds_in_states_walk_back_from_now(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    h = 1_800_000_000.0 // 3600 * 3600
    _change(conn, h - 100, KEY_A, None, "up:ok")
    _change(conn, h + 600, KEY_A, "up:ok", "down")  # 10 min up, then 20 down, then up for 30
    _change(conn, h + 1800, KEY_A, "down", "up:degraded")
    _change(conn, h + 4000, KEY_A, "up:degraded", "down")  # after the hour: walked back over
    _change(conn, h + 1200, KEY_B, None, "idle")
    secs = dict(rollup.seconds_in_states(conn, h, h + 3600))
    assert secs[("wg0", KEY_A)] == [600.0, 1800.0, 1200.0, 0.0]
    assert secs[("wg0", KEY_B)] == [0.0, 0.0, 0.0, 2400.0]
    rollup.rollup(conn, h, h + 3600, {("wg0", KEY_A): (100, 50)})
    rollup.rollup(conn, h, h + 3600, {})  # a second part of the same hour adds up
    row = conn.execute("SELECT rx, up_s, degraded_s, down_s FROM hourly WHERE key = ?", (KEY_A,)).fetchone()
    assert row == (100, 1200.0, 3600.0, 2400.0)
    figures = reading.figures(conn, h + 3600)
    assert figures[("wg0", KEY_A)].day == pytest.approx(4800 / 7200)
    assert figures[("wg0", KEY_B)].day is None  # idle only: no evidence either way


def test_a_crashed_run_is_rolled_up_to_its_last_heartbeat(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    start = 1_800_000_000.0 // 3600 * 3600 + 60
    memory.load(conn, start)  # a run starts
    _change(conn, start + 10, KEY_A, None, "up:ok")
    _change(conn, start + 610, KEY_A, "up:ok", "down")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('alive', ?)", (repr(start + 910),))  # then a kill -9
    remembered = memory.load(conn, start + 5000)  # the next start, an hour later
    assert remembered.stopped_at == start + 910
    row_a = remembered.peers.take(("wg0", KEY_A))
    assert row_a is not None and row_a.status == "down"
    row = conn.execute("SELECT up_s, down_s FROM hourly WHERE key = ?", (KEY_A,)).fetchone()
    assert row == (600.0, 300.0)  # the 68 minutes stopped count in no bucket


def test_outages_from_transitions(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    _change(conn, 100.0, KEY_A, None, "up:ok")
    _change(conn, 200.0, KEY_A, "up:ok", "down")
    _change(conn, 230.0, KEY_A, "down", "down:checking")  # the schedule moves: the same outage
    _change(conn, 260.0, KEY_A, "down:checking", "up:ok")
    _change(conn, 300.0, KEY_A, "up:ok", "down")
    found = reading.outages(conn, 0.0, 1000.0)
    assert [(o.start, o.end) for o in found] == [(200.0, 260.0), (300.0, None)]
    assert found[1].duration(1000.0) == 700.0


def test_writer_keeps_rows_while_the_disk_refuses_and_logs_once(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "history.db"
    writer = Writer(db.open_store(path), path)
    refuse = [True]

    def authorizer(action: int, *args: object) -> int:
        return sqlite3.SQLITE_DENY if refuse[0] and action == sqlite3.SQLITE_INSERT else sqlite3.SQLITE_OK

    writer.conn.set_authorizer(authorizer)  # a disk that refuses every insert, as a full one does
    with caplog.at_level(logging.INFO, logger="wgtrack.history"):
        for n in range(5):
            batch = Batch()
            batch.add("INSERT INTO endpoints (time, iface, key, new, kind) VALUES (?, 'wg0', ?, 'x', 'roam')",
                      [(float(n), KEY_A)])
            writer.submit(batch)
        _drain(writer)
        assert caplog.text.count("writes failing") == 1
        refuse[0] = False
        writer.submit(Batch())
        _drain(writer)
    assert "writing again after 5 failure(s)" in caplog.text
    assert writer.query("SELECT time FROM endpoints ORDER BY id") == [(float(n),) for n in range(5)]
    assert writer.close(5.0)


def _drain(writer: Writer) -> None:
    import time
    for _ in range(200):
        if writer.idle():
            time.sleep(0.02)
            if writer.idle():
                return
        time.sleep(0.01)
    raise AssertionError("the writer never caught up")


def test_outbox_rides_the_batch_and_bounds_what_it_hands_back(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    outbox = Outbox(memory.load(conn, WALL))
    ids = [outbox.put("output:webhook", f'"{n}"') for n in range(5)]
    outbox.done(ids[0])  # put and delivered in one cycle: never written
    batch = Batch()
    outbox.drain_into(batch)
    for statement, rows, _ in batch.writes:
        conn.executemany(statement, rows)
    outbox.done(ids[1])
    batch = Batch()
    outbox.drain_into(batch)
    for statement, rows, _ in batch.writes:
        conn.executemany(statement, rows)
    again = Outbox(memory.load(conn, WALL + 10))
    assert again.take("output:webhook", 2) == [(ids[3], '"3"'), (ids[4], '"4"')]  # the newest two
    assert again.put("output:webhook", "x") == ids[4] + 1


# ---- a restart through the tracker ----

def _dump(*peers: tuple[str, int]) -> Dump:
    records = tuple(PeerRecord("wg0", key, "198.51.100.9:51820", ("192.0.2.9/32",), hs, 100, 100, 25)
                    for key, hs in peers)
    return Dump((InterfaceRecord("wg0", KEY_B[::-1], 51820, None, records),))


def _peer_events(tracker: Tracker) -> list[Event]:
    return [e for e in tracker.events.drain() if e.public_key is not None]


def _row(key: str, status: str, since: float) -> PeerRow:
    return PeerRow("wg0", key, None, status, since, 1, "198.51.100.9:51820", 7, 0, 50, 60)


def _remembered(*rows: PeerRow) -> memory.Remembered:
    return memory.Remembered(row.values() for row in rows)


def test_restart_resumes_states_and_announces_only_what_changed_while_stopped() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    tracker.resumption = Resumption(_remembered(_row(KEY_A, "up:ok", WALL - 5000), _row(KEY_B, "up:ok", WALL - 4000)),
                                    lambda: tracker.views.wall_offset, 60.0)
    journal = tracker.events.journal = Journal()
    # A still up (a fresh handshake); B went down while stopped (its handshake is 10 minutes old)
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 5), (KEY_B, int(WALL) - 600)), 100.0, WALL)
    events = _peer_events(tracker)
    assert [(e.kind, e.public_key) for e in events] == [("peer_down", KEY_B)]
    assert "while wgtrack was stopped" in events[0].message and events[0].details["while_stopped"] == 1
    assert events[0].old_state == "up:ok"
    state = tracker.state_of(("wg0", KEY_A))
    assert state is not None and state.since + tracker.views.wall_offset == pytest.approx(WALL - 5000)
    tracked = tracker._peers[("wg0", KEY_A)]
    assert (tracked.rx_base, tracked.rx, tracked.rx_total) == (7, 100, 107)  # the counters go on
    assert [c.row.key for c in journal.changes] == [KEY_B]  # only B's change is history
    assert not tracker.resumption.remembered and tracker.resumption.remembered._conn is None  # all taken: closed


def test_a_remembered_peer_is_taken_once_and_the_few_left_outlive_the_database() -> None:
    remembered = _remembered(_row(KEY_A, "up:ok", WALL - 5000), _row(KEY_B, "down", WALL - 300))
    assert len(remembered) == 2
    assert remembered.take(("wg0", KEY_A)) == _row(KEY_A, "up:ok", WALL - 5000)
    assert remembered.take(("wg0", KEY_A)) is None  # a peer removed and added again starts afresh
    assert remembered.take(("wg1", KEY_B)) is None and len(remembered) == 1
    remembered.keep_few()  # B's interface is not up yet: B waits as an object, the database goes
    assert remembered._conn is None
    assert remembered.take(("wg0", KEY_B)) == _row(KEY_B, "down", WALL - 300) and not remembered
    assert not _remembered() and _remembered()._conn is None  # nothing remembered: no database


def test_the_resumption_keeps_the_few_left_once_a_window_has_passed() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    resumption = tracker.resumption = Resumption(_remembered(_row(KEY_A, "up:ok", WALL - 5000),
                                                             _row(KEY_B, "up:ok", WALL - 5000)),
                                                 lambda: tracker.views.wall_offset, 60.0)
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 5)), 100.0, WALL)  # B is not listed
    resumption.expire(100.0)
    resumption.expire(160.0)
    assert resumption.remembered._conn is not None and len(resumption.remembered) == 1
    resumption.expire(161.0)
    assert resumption.remembered._conn is None and len(resumption.remembered) == 1
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 5), (KEY_B, int(WALL) - 5)), 170.0, WALL + 70)
    tracked = tracker._peers[("wg0", KEY_B)]
    assert tracked.rx_base == 7 and not resumption.remembered  # B came later and still resumed


def test_remembered_down_peer_still_down_is_no_event() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    tracker.resumption = Resumption(_remembered(_row(KEY_A, "down", WALL - 300)),
                                    lambda: tracker.views.wall_offset, 60.0)
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 600)), 100.0, WALL)
    assert _peer_events(tracker) == []
    state = tracker.state_of(("wg0", KEY_A))
    assert state is not None and state.status is link.Status.DOWN
    assert state.since + tracker.views.wall_offset == pytest.approx(WALL - 300)


def test_an_idle_resumed_peer_lets_its_mark_go_after_the_window() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    resumption = tracker.resumption = Resumption(_remembered(_row(KEY_A, "up:ok", WALL - 5000)),
                                                 lambda: tracker.views.wall_offset, 60.0)
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 5)), 100.0, WALL)
    tracked = tracker._peers[("wg0", KEY_A)]
    assert tracked.resumed is not None  # nothing changed: settle has not weighed it
    resumption.expire(150.0)
    assert tracked.resumed is not None  # within the window a first change still counts as made while stopped
    resumption.expire(161.0)
    assert tracked.resumed is None and not resumption._marked


def test_without_memory_a_down_peer_is_announced() -> None:
    tracker = Tracker(config.parse("[general]\nping_interval = 0\n"))
    tracker.observe_dump(_dump((KEY_A, int(WALL) - 600)), 100.0, WALL)
    assert [e.kind for e in _peer_events(tracker)] == ["peer_down"]  # the test above fails without memory


def test_recorder_writes_changes_sessions_and_heartbeat(tmp_path: Path) -> None:
    from tests.snapshots import peer, snapshot
    path = tmp_path / "history.db"
    conn = db.open_store(path)
    remembered = memory.load(conn, WALL)
    writer = Writer(conn, path)
    journal = Journal()
    recorder = Recorder(writer, journal, Outbox(remembered), 400 * 86400.0, lambda: WALL)
    journal.changed(WALL + 1, None, "handshake", ("wg0", KEY_A), "a", "up:ok",
                    link.make_state(latest_handshake=int(WALL), endpoint="e:1"), (0, 0, 0, 0))
    journal.changed(WALL + 9, "up:ok", "probes failed", ("wg0", KEY_A), "a", "down",
                    link.make_state(latest_handshake=int(WALL) + 5, endpoint="e:1"), (0, 0, 0, 0))
    journal.endpoint(WALL + 3, "wg0", KEY_A, "e:1", "e:2", "roam")
    snap = snapshot(peer(KEY_A))
    recorder.cycle(snap)
    recorder.cycle(snap, stopping=True)
    _drain(writer)
    assert writer.query("SELECT old, new, reason FROM transitions") == [(None, "up:ok", "handshake"),
                                                                      ("up:ok", "down", "probes failed")]
    assert writer.query("SELECT start, end FROM sessions") == [(WALL, WALL + 5)]
    # the stop wrote each peer's counters and endpoint as the last snapshot had them
    assert writer.query("SELECT status, endpoint, rx FROM peers") == [("down", snap.interfaces[0].peers[0].endpoint,
                                                                      snap.interfaces[0].peers[0].rx_bytes)]
    assert writer.query("SELECT kind, new FROM endpoints") == [("roam", "e:2")]
    assert rollup.meta(writer.conn, "alive") == snap.time_ns / 1e9
    assert writer.close(5.0)


def test_noted_changes_are_rows_made_when_read() -> None:
    """Noting keeps references (the state is never changed once made); each row is made from
    them when read, and a slice is a view of the same notes."""
    journal = Journal()
    up = link.make_state(latest_handshake=int(WALL), endpoint="198.51.100.7:51820")
    journal.changed(WALL, None, "handshake", ("wg0", KEY_A), "a", "up:ok", up, (1, 2, 3, 4))
    journal.changed(WALL + 9, "up:ok", "probes failed", ("wg0", KEY_A), "a", "down",
                    link.replace(up, degraded="loss"), (1, 2, 5, 6))
    changes, _ = journal.drain()
    assert len(changes) == 2 and len(journal.changes) == 0
    assert changes[0].row == PeerRow("wg0", KEY_A, "a", "up:ok", WALL, int(WALL), "198.51.100.7:51820", 1, 2, 3, 4,
                                     None, "unproven")
    assert changes[-1].row.degraded == "loss" and (changes[-1].old, changes[-1].reason) == ("up:ok", "probes failed")
    assert [c.time for c in changes[1:]] == [WALL + 9] and list(changes[5:]) == []
    with pytest.raises(IndexError):
        changes[2]


def test_a_link_down_and_up_again_within_one_batch_closes_its_session_and_opens_one(tmp_path: Path) -> None:
    from tests.snapshots import peer, snapshot
    path = tmp_path / "history.db"
    conn = db.open_store(path)
    writer = Writer(conn, path)
    journal = Journal()
    recorder = Recorder(writer, journal, Outbox(memory.load(conn, WALL)), 400 * 86400.0, lambda: WALL)
    pid = ("wg0", KEY_A)
    journal.changed(WALL, None, "handshake", pid, None, "up:ok", link.make_state(latest_handshake=int(WALL)), (0,) * 4)
    recorder.cycle(snapshot(peer(KEY_A)))
    journal.changed(WALL + 100, "up:ok", "probes failed", pid, None, "down",
                    link.make_state(latest_handshake=int(WALL) + 50), (0,) * 4)
    journal.changed(WALL + 130, "down", "new handshake", pid, None, "up:ok",
                    link.make_state(latest_handshake=int(WALL) + 125), (0,) * 4)
    recorder.cycle(snapshot(peer(KEY_A)))
    _drain(writer)
    assert writer.query("SELECT start, end FROM sessions ORDER BY id") == [(WALL, WALL + 50), (WALL + 125, None)]
    assert writer.close(5.0)


def test_history_section_parses_and_a_reload_of_it_says_when_it_applies(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    from wgtrack.daemon import _Process
    old = config.parse("")
    new = config.parse(f"[history]\npath = {tmp_path / 'h.db'}\nretention = 30\n")
    assert (old.history_enabled, old.history_path, old.history_retention_s) == (True, None, 400 * 86400.0)
    assert (new.history_path, new.history_retention_s) == (tmp_path / "h.db", 30 * 86400.0)
    assert config.parse("[history]\nretention = 12h\nenabled = no\n").history_retention_s == 43200.0
    with pytest.raises(config.ConfigError, match=r"\[history\] retention = '10m': must be between 1 hour"):
        config.parse("[history]\nretention = 10m\n")
    with caplog.at_level(logging.WARNING):
        _Process(logging.INFO).reload(old, new)
    assert "[history] changed: it takes effect at the next start" in caplog.text


def test_peer_page_shows_outages_sessions_endpoints_and_the_week(tmp_path: Path) -> None:
    import asyncio
    import dataclasses

    from tests.snapshots import peer, snapshot
    from wgtrack.peerpages import PeerPages
    from wgtrack.statuspage import parse_peer_path, peer_path

    key = "ab/cd+ef" + "A" * 35 + "="
    view = peer(key, friendly_name=None, interface="peer/wg1")
    assert parse_peer_path(peer_path(view)) == ("peer/wg1", key)  # a namespace's slash, a key's / + =
    conn = _store(tmp_path)
    snap = dataclasses.replace(snapshot(view), history_path=str(tmp_path / "history.db"))
    now = snap.time_ns / 1e9
    for t, old, new in ((now - 9000, None, "up:ok"), (now - 7200, "up:ok", "down"), (now - 3600, "down", "up:ok")):
        conn.execute("INSERT INTO transitions (time, iface, key, old, new, reason) VALUES (?, 'peer/wg1', ?, ?, ?, ?)",
                     (t, key, old, new, "2 probes failed" if new == "down" else "probe answered"))
    conn.execute("INSERT INTO peers VALUES ('peer/wg1', ?, NULL, 'up:ok', ?, 0, NULL, 0, 0, 0, 0, NULL, NULL)",
                 (key, now - 3600))
    conn.execute("INSERT INTO sessions (iface, key, start, end) VALUES ('peer/wg1', ?, ?, ?)", (key, now - 9000,
                                                                                              now - 7300))
    conn.execute("INSERT INTO endpoints (time, iface, key, old, new, kind) VALUES (?, 'peer/wg1', ?, 'x:1', 'y:2', "
                 "'set')", (now - 7000, key))

    async def fetch() -> str | None:
        pages = PeerPages()
        found = await pages.page(snap, peer_path(view))
        assert await pages.page(snap, "/peer/peer%2Fwg1/nobody") is None
        return "".join(found) if found is not None else None

    page = asyncio.run(fetch())
    assert page is not None and "<script" not in page
    assert "2 probes failed" in page and "<td>60m</td>" in page  # the outage: an hour long
    assert "x:1" in page and "y:2" in page and "set by wgtrack" in page
    assert page.count('title="down from') == 1 and page.count('title="up:ok from') == 2  # the week's bar
    assert 'title="not tracked from' in page  # before its first change: nothing known


def test_a_store_that_cannot_be_opened_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    db.open_store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # another process holds it, as a second wgtrack on the same file would
    try:
        original = db.BUSY_TIMEOUT_MS
        db.BUSY_TIMEOUT_MS = 100
        with pytest.raises(db.HistoryError, match="cannot be opened"):
            db.open_store(path)
    finally:
        db.BUSY_TIMEOUT_MS = original
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("*.bad-*"))  # never moved aside for being busy


def test_influxdb_points_buffered_at_a_stop_are_written_after_the_start(tmp_path: Path) -> None:
    import asyncio

    from wgtrack.outputs.influxdb import InfluxDB, InfluxDBSettings

    conn = _store(tmp_path)
    settings = InfluxDBSettings(url="http://127.0.0.1:9", bucket="b", timeout_s=0.5)  # nobody listens there
    lines = [f"wireguard_peer,interface=wg0 rx={n}i {n}" for n in range(3)]

    async def stop_with_points() -> None:
        outbox = Outbox(memory.load(conn, WALL))
        first = InfluxDB("output:influxdb", settings)
        first.keep_in(outbox, "output:influxdb")
        first.add_lines(lines)
        await first.close()  # its last chance fails: the points stay buffered
        batch = Batch()
        outbox.drain_into(batch)  # what History.close writes
        for statement, rows, _ in batch.writes:
            conn.executemany(statement, rows)

    asyncio.run(stop_with_points())
    second = InfluxDB("output:influxdb", settings)
    second.keep_in(Outbox(memory.load(conn, WALL + 60)), "output:influxdb")
    assert list(second.buffer) == lines


def test_status_file_and_wgtrack_status_carry_the_availability() -> None:
    import dataclasses
    import json

    from tests.snapshots import peer, snapshot
    from wgtrack.history.reading import Availability
    from wgtrack.outputs.json_status import render_status
    from wgtrack.status import table

    view = peer(KEY_A)
    days = (None,) * 29 + (0.75,)
    snap = dataclasses.replace(snapshot(view), availability={(view.interface, view.public_key):
                                                             Availability(0.75, 0.9, 0.995, days)})
    doc = json.loads(render_status(snap))
    (entry,) = [p for i in doc["interfaces"] for p in i["peers"]]
    assert entry["availability"] == {"24h": 0.75, "7d": 0.9, "30d": 0.995, "days": [None] * 29 + [0.75]}
    lines = table(doc, doc["time"]).splitlines()
    assert lines[1].split()[-1] == "30 DAYS"[-4:] and lines[2].rstrip().endswith("99.50%")


def test_figures_put_each_peer_together_from_hours_days_and_the_live_part(tmp_path: Path) -> None:
    """24 h from the hourly rows, 7 and 30 days and the bar from the daily ones, each with the
    part of the hour not rolled up yet; peers in any key order; alike figures one object."""
    conn = _store(tmp_path)
    now = 1_800_000_000.0 // 86400 * 86400 + 7200.0
    today, hour = int(now // 86400), int(now // 3600)
    a, b, c, d = "Z" * 43 + "=", "B" * 43 + "=", "M" * 43 + "=", "C" * 43 + "="
    for key, status in ((a, "up:ok"), (b, "idle"), (c, "down"), (d, "down")):
        conn.execute("INSERT INTO peers VALUES ('wg0', ?, NULL, ?, 0, 0, NULL, 0, 0, 0, 0, NULL, NULL)", (key, status))
    daily = "INSERT INTO daily VALUES (?, 'wg0', ?, 0, 0, ?, ?, ?, ?)"
    conn.execute(daily, (today - 40, a, 100.0, 0.0, 0.0, 0.0))  # past the 30 days
    conn.execute(daily, (today - 10, a, 3000.0, 0.0, 1000.0, 0.0))
    conn.execute(daily, (today - 2, a, 250.0, 250.0, 500.0, 0.0))
    conn.execute(daily, (today, a, 100.0, 0.0, 0.0, 0.0))
    conn.execute(daily, (today - 20, b, 0.0, 0.0, 0.0, 50.0))  # idle only
    conn.execute("INSERT INTO hourly VALUES (?, 'wg0', ?, 0, 0, 100.0, 0.0, 0.0, 0.0)", (hour - 1, a))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('rolled_until', ?)", (repr(now - 600),))
    figures = reading.figures(conn, now)
    assert set(figures) == {("wg0", k) for k in (a, b, c, d)}
    fig_a = figures[("wg0", a)]
    assert fig_a.day == 1.0 and fig_a.week == pytest.approx(1200 / 1700) and fig_a.month == pytest.approx(4200 / 5700)
    assert fig_a.days == (None,) * 19 + (0.75,) + (None,) * 7 + (0.5, None, 1.0)
    assert figures[("wg0", b)] == reading.Availability(None, None, None, (None,) * 30)
    assert figures[("wg0", c)] == reading.Availability(0.0, 0.0, 0.0, (None,) * 29 + (0.0,))
    assert figures[("wg0", c)] is figures[("wg0", d)]


def test_figures_are_a_mapping_by_interface_then_key() -> None:
    """Figures held by interface, then key (no tuple per peer), read as (interface, key)."""
    from wgtrack.history.availability import Availability, Figures

    fig, other = Availability(1.0, 1.0, 1.0, (1.0,)), Availability(0.5, None, None, (None,))
    figures = Figures()
    figures.put(("wg0", KEY_A), fig)
    figures.put(("wg1", KEY_A), other)
    figures.put(("wg0", KEY_A), fig)  # again: still one peer
    assert len(figures) == 2 and set(figures) == {("wg0", KEY_A), ("wg1", KEY_A)}
    assert figures[("wg1", KEY_A)] is other and figures.get(("wg0", KEY_A)) is fig
    assert figures.get(("wg2", KEY_A)) is None and figures.get(("wg0", "x")) is None
    assert dict(figures) == {("wg0", KEY_A): fig, ("wg1", KEY_A): other}
