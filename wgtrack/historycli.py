"""``wgtrack history`` and ``wgtrack report``: the store read back (read-only; the daemon may be
writing meanwhile, WAL lets both be)."""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from wgtrack import config
from wgtrack.history import db, reading, store
from wgtrack.model import short_key

PeerId = tuple[str, str]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text: str) -> float:
    """7d, 12h, 30m, 90s, 2w."""
    try:
        return float(text[:-1]) * UNITS[text[-1]] if text[-1:] in UNITS else float(text) * 86400
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 7d, 12h or 30m") from None


def _month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in text.split("-"))
        if not 1 <= month <= 12:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a month such as 2026-11") from None
    return year, month


def _open(config_path: str) -> sqlite3.Connection:
    try:
        path = store.path_of(config.load(config_path))
    except config.ConfigError:
        path = store.default_path()
    if not Path(path).exists():
        raise SystemExit(f"wgtrack: no history store at {path} (is [history] enabled, has wgtrack run?)")
    conn = db.connect(Path(path), readonly=True)
    try:
        _, version = db.versions(conn)
    except sqlite3.DatabaseError as exc:
        raise SystemExit(f"wgtrack: {path}: not a history store ({exc})") from None
    if version > db.VERSION:
        raise SystemExit(f"wgtrack: {path}: schema version {version} is newer than this wgtrack knows ({db.VERSION})")
    return conn


def _label(pid: PeerId, names: dict[PeerId, str | None]) -> str:
    return f"{pid[0]}/{names.get(pid) or short_key(pid[1])}"


def find_peer(text: str, names: dict[PeerId, str | None]) -> PeerId:
    """A peer by interface/name, name, public key or its start; exactly one must match."""
    found = [pid for pid, name in names.items()
             if text in (pid[1], name, f"{pid[0]}/{name}", f"{pid[0]}/{pid[1]}") or pid[1].startswith(text)]
    if len(found) != 1:
        raise SystemExit(f"wgtrack: {text!r} matches {len(found)} peers in the history store" +
                         (": " + ", ".join(_label(p, names) for p in found[:10]) if found else ""))
    return found[0]


def _iso(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t is not None else "-"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def history_records(conn: sqlite3.Connection, since: float, peer: PeerId | None, now: float) -> list[dict[str, Any]]:
    names = reading.names(conn)
    rows: list[dict[str, Any]] = []
    for o in reading.outages(conn, since, now, peer):
        rows.append({"record": "outage", "peer": _label((o.iface, o.key), names), "interface": o.iface,
                     "public_key": o.key, "start": o.start, "end": o.end, "duration_s": round(o.duration(now), 1),
                     "detail": o.reason})
    for iface, key, start, end in reading.sessions(conn, since, peer):
        rows.append({"record": "session", "peer": _label((iface, key), names), "interface": iface, "public_key": key,
                     "start": start, "end": end, "duration_s": round((end or now) - start, 1), "detail": ""})
    for t, iface, key, old, new, kind in reading.endpoints(conn, since, peer):
        rows.append({"record": "endpoint", "peer": _label((iface, key), names), "interface": iface,
                     "public_key": key, "start": t, "end": None, "duration_s": None,
                     "detail": f"{old or '(none)'} -> {new} ({'set by wgtrack' if kind == 'set' else 'roamed'})"})
    return sorted(rows, key=lambda r: (r["start"], r["record"]))


def history_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wgtrack history", description="Outages, sessions and endpoint changes "
                                     "from the history store.")
    parser.add_argument("peer", nargs="?", help="interface/name, name, or public key (or its start)")
    parser.add_argument("--since", type=_duration, default=7 * 86400.0, help="how far back (default 7d)")
    parser.add_argument("-c", "--config", default=str(config.DEFAULT_PATH))
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true")
    form.add_argument("--csv", action="store_true")
    args = parser.parse_args(argv)
    conn = _open(args.config)
    now = time.time()
    peer = find_peer(args.peer, reading.names(conn)) if args.peer else None
    rows = history_records(conn, now - args.since, peer, now)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["record"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        print(f"{'RECORD':<9} {'PEER':<28} {'START':<19} {'END':<19} {'DURATION':>9}  DETAIL")
        for r in rows:
            duration = _span(r["duration_s"]) if r["duration_s"] is not None else "-"
            end = _iso(r["end"]) if r["record"] != "endpoint" else ""
            if r["end"] is None and r["record"] != "endpoint":
                end = "(ongoing)"
            print(f"{r['record']:<9} {r['peer']:<28} {_iso(r['start']):<19} {end:<19} {duration:>9}  {r['detail']}")
    return 0


def report_rows(conn: sqlite3.Connection, year: int, month: int, now: float) -> list[dict[str, Any]]:
    """Availability per peer over one UTC month, with its outages, the longest and the MTTR."""
    first = calendar.timegm((year, month, 1, 0, 0, 0))
    last = calendar.timegm((year + month // 12, month % 12 + 1, 1, 0, 0, 0))
    names = reading.names(conn)
    totals = reading.totals(conn, first // 86400, last // 86400 - 1)
    by_peer: dict[PeerId, list[reading.Outage]] = {}
    for o in reading.outages(conn, first, min(last, now)):
        by_peer.setdefault((o.iface, o.key), []).append(o)
    rows = []
    for pid in sorted(totals.keys() | by_peer.keys()):
        up, down = totals.get(pid, (0.0, 0.0))
        outs = by_peer.get(pid, [])
        ended = [o.duration(now) for o in outs if o.end is not None]
        rows.append({"peer": _label(pid, names), "interface": pid[0], "public_key": pid[1],
                     "availability": reading.ratio(up, down), "outages": len(outs),
                     "longest_s": round(max((o.duration(now) for o in outs), default=0.0), 1),
                     "mttr_s": round(sum(ended) / len(ended), 1) if ended else None})
    return rows


def report_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wgtrack report", description="Availability per peer over a month "
                                     "(UTC), from the history store: time up over time up or down.")
    parser.add_argument("--month", type=_month, default=None, help="YYYY-MM (default: this month)")
    parser.add_argument("-c", "--config", default=str(config.DEFAULT_PATH))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    now = time.time()
    year, month = args.month or time.gmtime(now)[:2]
    rows = report_rows(_open(args.config), year, month, now)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    print(f"{year:04d}-{month:02d} (UTC)")
    print(f"{'PEER':<32} {'AVAILABILITY':>12} {'OUTAGES':>8} {'LONGEST':>9} {'MTTR':>9}")
    for r in rows:
        avail = f"{r['availability'] * 100:.3f} %" if r["availability"] is not None else "-"
        mttr = _span(r["mttr_s"]) if r["mttr_s"] is not None else "-"
        print(f"{r['peer']:<32} {avail:>12} {r['outages']:>8} {_span(r['longest_s']):>9} {mttr:>9}")
    return 0
