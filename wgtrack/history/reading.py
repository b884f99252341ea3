"""What the store says of the past: availability per peer (24 h, 7 d, 30 d and a bar of 30
days), outages, sessions and endpoint changes, and the retention pass.

Availability is time up (up:ok or up:degraded) over time up or down. Idle time (no evidence
either way) and time wgtrack was not running count in neither: they are not known. Days are
UTC days. The part of the current hour not yet rolled up is read live from the changes."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from wgtrack.history import db, rollup

PeerId = tuple[str, str]
BAR_DAYS = 30


@dataclass(frozen=True, slots=True)
class Availability:
    """One peer's figures (None: no time up or down in the period)."""

    day: float | None
    week: float | None
    month: float | None
    days: tuple[float | None, ...]  # the last BAR_DAYS UTC days, oldest first, today last


def ratio(up: float, down: float) -> float | None:
    return up / (up + down) if up + down > 0 else None


Figures = dict[PeerId, Availability]


def figures(conn: sqlite3.Connection, now: float | None = None) -> Figures:
    """Every peer's availability as the store has it now. Summed in sqlite, a day at a time for
    the bar: a 50,000-peer hub's 30 days are 1.5 million rows, never all in Python at once. Alike
    figures are one object (most peers of a healthy hub share theirs)."""
    now = time.time() if now is None else now
    today, this_hour = int(now // rollup.DAY_S), int(now // rollup.HOUR_S)
    rolled = rollup.meta(conn, "rolled_until") or now
    sums: dict[PeerId, list[float]] = {}  # up and down over 24 h, 7 d, 30 d
    for iface, key, up, down in conn.execute(
            "SELECT iface, key, sum(up_s + degraded_s), sum(down_s) FROM hourly WHERE hour > ? GROUP BY iface, key",
            (this_hour - 24,)):
        sums[(iface, key)] = [up, down, 0.0, 0.0, 0.0, 0.0]
    for iface, key, up7, down7, up30, down30 in conn.execute(
            "SELECT iface, key, sum(CASE WHEN day > ?1 THEN up_s + degraded_s ELSE 0 END), "
            "sum(CASE WHEN day > ?1 THEN down_s ELSE 0 END), sum(up_s + degraded_s), sum(down_s) FROM daily "
            "WHERE day > ?2 GROUP BY iface, key", (today - 7, today - BAR_DAYS)):
        found = sums.setdefault((iface, key), [0.0] * 6)
        found[2:] = [up7, down7, up30, down30]
    cells: dict[PeerId, dict[int, tuple[float, float]]] = {}  # only the days with figures
    for n, day in enumerate(range(today - BAR_DAYS + 1, today + 1)):
        for iface, key, up, down in conn.execute(
                "SELECT iface, key, up_s + degraded_s, down_s FROM daily WHERE day = ? AND up_s + degraded_s + "
                "down_s > 0", (day,)):
            cells.setdefault((iface, key), {})[n] = (up, down)
    live = rollup.seconds_in_states(conn, rolled, now) if rolled < now else iter(())
    for pid, secs in live:  # the part of the hour not rolled up yet: today's
        up, down = secs[0] + secs[1], secs[2]
        if up + down <= 0:
            continue  # idle only: no figure either way
        found = sums.setdefault(pid, [0.0] * 6)
        for i in (0, 2, 4):
            found[i] += up
            found[i + 1] += down
        peer_cells = cells.setdefault(pid, {})
        before = peer_cells.get(BAR_DAYS - 1, (0.0, 0.0))
        peer_cells[BAR_DAYS - 1] = (before[0] + up, before[1] + down)
    bars: dict[tuple[tuple[int, float | None], ...], tuple[float | None, ...]] = {}
    alike: dict[tuple[object, ...], Availability] = {}
    result: Figures = {}
    for pid, s in sums.items():
        marks = tuple((n, ratio(*c)) for n, c in sorted(cells.get(pid, {}).items()))
        days = bars.get(marks)
        if days is None:  # one tuple for every peer whose days read alike
            laid: list[float | None] = [None] * BAR_DAYS
            for n, r in marks:
                laid[n] = r
            days = bars[marks] = tuple(laid)
        made = Availability(ratio(s[0], s[1]), ratio(s[2], s[3]), ratio(s[4], s[5]), days)
        result[pid] = alike.setdefault((made.day, made.week, made.month, days), made)
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
