"""What the store says of the past: availability per peer (24 h, 7 d, 30 d and a bar of 30
days), outages, sessions and endpoint changes, and the retention pass.

Availability is time up (up:ok or up:degraded) over time up or down. Idle time (no evidence
either way) and time wgtrack was not running count in neither: they are not known. Days are
UTC days. The part of the current hour not yet rolled up is read live from the changes."""

from __future__ import annotations

import heapq
import itertools
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from wgtrack.dump import canonical_key
from wgtrack.history import db, rollup
from wgtrack.history.availability import Availability as Availability  # the readers' name for it
from wgtrack.history.availability import Figures

PeerId = tuple[str, str]
BAR_DAYS = 30


def ratio(up: float, down: float) -> float | None:
    return up / (up + down) if up + down > 0 else None


def _streams(conn: sqlite3.Connection, now: float) -> Iterator[tuple[PeerId, int, tuple[Any, ...]]]:
    """The store's figures as one stream of (peer, kind, row) in peer order: 0, up and down over
    24 h; 1, over 7 and 30 days; 2, a day of the bar (its index, up, down); 3, the seconds in
    each state not rolled up yet. Each query is ordered by peer, so a peer's rows come
    together, and no peer's rows are held beyond its own."""
    today, this_hour = int(now // rollup.DAY_S), int(now // rollup.HOUR_S)
    first = today - BAR_DAYS + 1
    rolled = rollup.meta(conn, "rolled_until") or now
    hours = conn.execute("SELECT iface, key, sum(up_s + degraded_s), sum(down_s) FROM hourly WHERE hour > ? "
                         "GROUP BY iface, key ORDER BY iface, key", (this_hour - 24,))
    days = conn.execute(
        "SELECT iface, key, sum(CASE WHEN day > ?1 THEN up_s + degraded_s ELSE 0 END), "
        "sum(CASE WHEN day > ?1 THEN down_s ELSE 0 END), sum(up_s + degraded_s), sum(down_s) FROM daily "
        "WHERE day >= ?2 GROUP BY iface, key ORDER BY iface, key", (today - 7, first))
    cells = conn.execute("SELECT iface, key, day - ?1, up_s + degraded_s, down_s FROM daily WHERE day >= ?1 "
                         "AND day <= ?2 AND up_s + degraded_s + down_s > 0 ORDER BY iface, key, day", (first, today))
    live = rollup.seconds_in_states(conn, rolled, now) if rolled < now else iter(())
    return heapq.merge(
        (((r[0], r[1]), 0, r[2:]) for r in hours), (((r[0], r[1]), 1, r[2:]) for r in days),
        (((r[0], r[1]), 2, r[2:]) for r in cells),
        ((pid, 3, (secs[0] + secs[1], secs[2])) for pid, secs in live), key=itemgetter(0))


def _one(rows: Iterable[tuple[PeerId, int, tuple[Any, ...]]],
         bars: dict[tuple[float | None, ...], tuple[float | None, ...]]) -> Availability | None:
    """One peer's figures from its rows (None: no time up or down known at all)."""
    sums = [0.0] * 6  # up and down over 24 h, 7 d, 30 d
    cells: dict[int, tuple[float, float]] = {}  # only the days with figures
    known = False
    for _pid, kind, row in rows:
        if kind == 0:
            sums[0:2], known = row, True
        elif kind == 1:
            sums[2:6], known = row, True
        elif kind == 2:
            cells[row[0]] = (row[1], row[2])
        elif row[0] + row[1] > 0:  # the part of the hour not rolled up yet: today's (idle only: none)
            up, down = row
            for i in (0, 2, 4):
                sums[i] += up
                sums[i + 1] += down
            before = cells.get(BAR_DAYS - 1, (0.0, 0.0))
            cells[BAR_DAYS - 1] = (before[0] + up, before[1] + down)
            known = True
    if not known:
        return None
    laid: list[float | None] = [None] * BAR_DAYS
    for n, (up, down) in cells.items():  # the query's days and today's: all within the bar
        laid[n] = ratio(up, down)
    days = tuple(laid)
    days = bars.setdefault(days, days)  # one tuple for every peer whose days read alike
    return Availability(ratio(sums[0], sums[1]), ratio(sums[2], sums[3]), ratio(sums[4], sums[5]), days)


def figures(conn: sqlite3.Connection, now: float | None = None) -> Figures:
    """Every peer's availability as the store has it now: summed in sqlite, and put together one
    peer at a time (a 50,000-peer hub's 30 days are 1.5 million rows: held at once, a month-old
    hub's bars alone were tens of MB). Alike figures are one object (most peers of a healthy hub
    share theirs), and a peer's key is the dump's string object (the tracker's)."""
    now = time.time() if now is None else now
    bars: dict[tuple[float | None, ...], tuple[float | None, ...]] = {}
    alike: dict[tuple[object, ...], Availability] = {}
    result = Figures()
    for pid, rows in itertools.groupby(_streams(conn, now), key=itemgetter(0)):
        made = _one(rows, bars)
        if made is not None:
            key = (sys.intern(pid[0]), canonical_key(pid[1]))
            result.put(key, alike.setdefault((made.day, made.week, made.month, made.days), made))
    return result


def forget_before(conn: sqlite3.Connection, cutoff: float) -> None:
    """Delete what is older than the retention (one transaction)."""
    with db.transaction(conn):
        conn.execute("DELETE FROM transitions WHERE time < ?", (cutoff,))
        conn.execute("DELETE FROM endpoints WHERE time < ?", (cutoff,))
        conn.execute("DELETE FROM sessions WHERE end IS NOT NULL AND end < ?", (cutoff,))
        conn.execute("DELETE FROM hourly WHERE hour < ?", (int(cutoff // rollup.HOUR_S),))
        conn.execute("DELETE FROM daily WHERE day < ?", (int(cutoff // rollup.DAY_S),))


@dataclass(frozen=True, slots=True)
class Outage:
    iface: str
    key: str
    start: float
    end: float | None  # None: still down
    reason: str

    def duration(self, now: float) -> float:
        return (self.end if self.end is not None else now) - self.start


def _down(status: str | None) -> bool:
    return status is not None and status.startswith("down")


def outages(conn: sqlite3.Connection, since: float, until: float, peer: PeerId | None = None) -> list[Outage]:
    """Outages that overlap [since, until): from entering a down state to leaving them (an
    outage that began earlier starts at its real start)."""
    where, params = ("AND iface = ? AND key = ?", peer) if peer else ("", ())
    found: list[Outage] = []
    open_: dict[PeerId, tuple[float, str]] = {}
    for t, iface, key, old, new, reason in conn.execute(
            f"SELECT time, iface, key, old, new, reason FROM transitions WHERE time < ? {where} ORDER BY id",
            (until, *params)):
        pid = (iface, key)
        if _down(new) and not _down(old) and pid not in open_:
            open_[pid] = (t, reason)
        elif not _down(new) and pid in open_:
            start, why = open_.pop(pid)
            if t >= since:
                found.append(Outage(iface, key, start, t, why))
    found += [Outage(pid[0], pid[1], start, None, why) for pid, (start, why) in open_.items()]
    return sorted(found, key=lambda o: o.start)


def sessions(conn: sqlite3.Connection, since: float,
             peer: PeerId | None = None) -> list[tuple[str, str, float, float | None]]:
    where, params = ("AND iface = ? AND key = ?", peer) if peer else ("", ())
    return list(conn.execute(f"SELECT iface, key, start, end FROM sessions WHERE (end IS NULL OR end >= ?) {where} "
                             "ORDER BY start", (since, *params)))


def endpoints(conn: sqlite3.Connection, since: float, peer: PeerId | None = None) \
        -> list[tuple[float, str, str, str | None, str, str]]:
    where, params = ("AND iface = ? AND key = ?", peer) if peer else ("", ())
    return list(conn.execute(f"SELECT time, iface, key, old, new, kind FROM endpoints WHERE time >= ? {where} "
                             "ORDER BY time", (since, *params)))


def names(conn: sqlite3.Connection) -> dict[PeerId, str | None]:
    return {(iface, key): name for iface, key, name in conn.execute("SELECT iface, key, name FROM peers")}


def totals(conn: sqlite3.Connection, first_day: int, last_day: int) -> dict[PeerId, tuple[float, float]]:
    """(seconds up, seconds down) per peer over the UTC days [first_day, last_day]."""
    return {(iface, key): (up + degraded, down) for iface, key, up, degraded, down in conn.execute(
        "SELECT iface, key, sum(up_s), sum(degraded_s), sum(down_s) FROM daily WHERE day BETWEEN ? AND ? "
        "GROUP BY iface, key", (first_day, last_day))}


PAGE_ITEMS = 100  # outages, sessions and endpoint changes a peer page lists, the newest


@dataclass(frozen=True, slots=True)
class PeerHistory:
    """What a peer's page shows of its past."""

    outages: list[Outage]
    sessions: list[tuple[str, str, float, float | None]]
    endpoints: list[tuple[float, str, str, str | None, str, str]]
    # the last 7 days as (start, end, status) spans; None: not tracked (wgtrack stopped, or before)
    spans: list[tuple[float, float, str | None]]


def peer_history(conn: sqlite3.Connection, peer: PeerId, now: float, days: int = 30) -> PeerHistory:
    """One peer's outages, sessions and endpoint changes of the last ``days`` days (the newest
    PAGE_ITEMS of each), and its last 7 days as spans of status."""
    since = now - days * 86400
    return PeerHistory(outages(conn, since, now, peer)[-PAGE_ITEMS:], sessions(conn, since, peer)[-PAGE_ITEMS:],
                       endpoints(conn, since, peer)[-PAGE_ITEMS:], spans(conn, peer, now - 7 * 86400, now))


def spans(conn: sqlite3.Connection, peer: PeerId, start: float, end: float) -> list[tuple[float, float, str | None]]:
    """The peer's status over [start, end) from its changes (before its first known change
    within the window: the status that change left)."""
    rows = list(conn.execute("SELECT time, old, new FROM transitions WHERE iface = ? AND key = ? AND time >= ? "
                             "ORDER BY id", (*peer, start)))
    last = conn.execute("SELECT status FROM peers WHERE iface = ? AND key = ?", peer).fetchone()
    found: list[tuple[float, float, str | None]] = []
    at, state = start, (rows[0][1] if rows else (last[0] if last else None))
    for t, _old, new in rows:
        if t > at:
            found.append((at, t, state))
        at, state = max(at, t), new
    if end > at:
        found.append((at, end, state))
    return found
