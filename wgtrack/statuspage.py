"""The live status page served at ``/`` beside ``/metrics``: the peer table and an hour's timeline.

Plain HTML with inline CSS and no script: it works offline, refreshes itself with a meta
refresh, and stays a readable table in a browser with JavaScript off or in a text browser.
The page is built from the snapshot the exporter already holds; rates come from the snapshot
before it, the timeline from the state changes kept in ``Timeline`` (a bounded ring buffer).
"""

from __future__ import annotations

import html
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wgtrack import quality
from wgtrack.history.availability import Availability
from wgtrack.snapshot import PeerView, Snapshot

TIMELINE_S = 3600.0  # the page shows the last hour
TIMELINE_ENTRIES = 10_000  # ring buffer: a flapping hub cannot grow it without end
PAGE_ROWS = 500  # peers per page of the table, the worst first
RECENT_CHANGES = 50  # the change list under the timeline
CHUNK_ROWS = 500  # rows rendered per chunk, so a big hub's page never holds the loop long
STATE_EVENTS = ("peer_down", "peer_up")


@dataclass(frozen=True, slots=True)
class Change:
    """One state change of one peer, as the timeline keeps it."""

    time: float  # epoch s
    interface: str
    public_key: str
    name: str
    old: str
    new: str


class Timeline:
    """State changes of the last hour, newest last; memory bounded by ``TIMELINE_ENTRIES``."""

    def __init__(self, span_s: float = TIMELINE_S, entries: int = TIMELINE_ENTRIES) -> None:
        self.span_s = span_s
        self._changes: deque[Change] = deque(maxlen=entries)

    def record(self, snapshot: Snapshot) -> None:
        for event in snapshot.events:
            if event.kind in STATE_EVENTS and event.interface and event.public_key:
                self._changes.append(Change(event.time, event.interface, event.public_key,
                                            event.friendly_name or event.public_key[:8] + "…",
                                            event.old_state or "new", event.new_state or "?"))

    def window(self, now: float) -> list[Change]:
        """The changes of the last ``span_s`` seconds, oldest first (older ones are dropped)."""
        while self._changes and self._changes[0].time < now - self.span_s:
            self._changes.popleft()
        return list(self._changes)


def state_class(status: str) -> str:
    """The CSS class (and colour) of a state: up green, degraded amber, down red, idle grey."""
    if status.startswith("up:degraded"):
        return "degraded"
    if status.startswith("up"):
        return "up"
    if status.startswith("down"):
        return "down"
    return "idle"


def _order(view: PeerView) -> tuple[int, str, str]:
    rank = {"down": 0, "degraded": 1, "idle": 2, "up": 3}[state_class(view.status.value)]
    return rank, view.interface, view.friendly_name or view.public_key


def human_age(seconds: float | None, missing: str = "never") -> str:
    """A duration as an operator reads it at a glance: 90s, 45m, 5h, 3d."""
    if seconds is None:
        return missing
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def human_rate(bytes_per_s: float | None) -> str:
    if bytes_per_s is None:
        return "-"
    value = bytes_per_s
    for unit in ("B/s", "kB/s", "MB/s", "GB/s"):
        if value < 1000 or unit == "GB/s":
            return f"{value:.0f} {unit}" if unit == "B/s" else f"{value:.1f} {unit}"
        value /= 1000
    return "-"  # not reached


def endpoint_text(endpoint: str | None, host: str | None) -> str:
    if host:
        return f"{host} → {endpoint or '(unresolved)'}"
    return endpoint or "-"


def rates(current: Snapshot, previous: Snapshot | None) -> dict[tuple[str, str], tuple[float, float]]:
    """rx and tx bytes per second of every peer seen in both snapshots (a reset counts as none)."""
    if previous is None or previous.time_ns >= current.time_ns:
        return {}
    listed = Ordered().of(current, previous)
    return listed.rates(listed.views, (current.time_ns - previous.time_ns) / 1e9)


STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;color:#222;background:#fff}
table{border-collapse:collapse;font-size:14px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:bold;padding:1px 6px;border-radius:3px;color:#fff}
.state.up{background:#1a7f37}.state.down{background:#cf222e}.state.idle{background:#6e7781}
.state.degraded{background:#bf8700}
.bar{display:flex;width:600px;height:14px;background:#eee}
.bar span{display:block;height:14px}
.bar .up{background:#1a7f37}.bar .down{background:#cf222e}.bar .idle{background:#6e7781}
.bar .degraded{background:#bf8700}
.days{display:inline-flex;gap:1px;vertical-align:middle}.days span{display:block;width:5px;height:14px}
.days .a100{background:#1a7f37}.days .a99{background:#4ac26b}.days .a95{background:#bf8700}
.days .alow{background:#cf222e}.days .anone{background:#d0d7de}
.warn{color:#cf222e;font-weight:bold}
small{color:#666}
"""


class Ordered:
    """A snapshot's peers worst first and counted by state, and the previous snapshot's
    counters by peer: made once per snapshot, so that each page of a 50,000-peer table costs
    only its own rows."""

    def __init__(self) -> None:
        self._for: tuple[Snapshot | None, Snapshot | None] = (None, None)
        self.views: list[PeerView] = []
        self.counts: dict[str, int] = {}
        self._before: dict[tuple[str, str], tuple[int, int]] = {}

    def of(self, snapshot: Snapshot, previous: Snapshot | None) -> Ordered:
        if self._for[0] is not snapshot:
            self.views = sorted((p for iface in snapshot.interfaces for p in iface.peers), key=_order)
            self.counts = {}
            for view in self.views:
                kind = state_class(view.status.value)
                self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._for[1] is not previous:
            self._before = {(p.interface, p.public_key): (p.rx_bytes, p.tx_bytes)
                            for iface in (previous.interfaces if previous else ()) for p in iface.peers}
        self._for = (snapshot, previous)
        return self

    def rates(self, views: list[PeerView], seconds: float) -> dict[tuple[str, str], tuple[float, float]]:
        """rx and tx bytes per second of ``views`` since the previous snapshot."""
        if seconds <= 0:
            return {}
        found = {}
        for p in views:
            old = self._before.get((p.interface, p.public_key))
            if old is not None:
                found[(p.interface, p.public_key)] = (max(0, p.rx_bytes - old[0]) / seconds,
                                                      max(0, p.tx_bytes - old[1]) / seconds)
        return found


def render(snapshot: Snapshot | None, previous: Snapshot | None, timeline: Timeline,
           now: float | None = None, page: int = 1, ordered: Ordered | None = None) -> Iterator[str]:
    """The page (``page``: of the table, PAGE_ROWS peers each), chunk by chunk."""
    now = time.time() if now is None else now
    esc = html.escape
    refresh = int(min(30, max(2, snapshot.cycle_time_s if snapshot else 5)))
    title = f"wgtrack on {snapshot.host}" if snapshot and snapshot.host else "wgtrack"
    yield (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           f'<meta http-equiv="refresh" content="{refresh}">'
           f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n<h1>{esc(title)}</h1>\n")
    if snapshot is None:
        yield "<p>No cycle has completed yet.</p></body></html>\n"
        return
    age = max(0.0, now - snapshot.time_ns / 1e9)
    head = f"cycle {snapshot.cycle}, {human_age(age)} ago; refreshes every {refresh} s"
    yield f"<p><small>{esc(head)}</small></p>\n"
    if snapshot.stopped:
        yield '<p class="warn">wgtrack has stopped; this is what it knew then.</p>\n'
    if not snapshot.wg_ok:
        yield f'<p class="warn">WireGuard is not readable: {esc(snapshot.wg_error or "")}</p>\n'
    listed = (ordered or Ordered()).of(snapshot, previous)
    views, per_state = listed.views, listed.counts
    counts = ", ".join(f"{per_state.get(k, 0)} {k}" for k in ("down", "degraded", "idle", "up"))
    yield f"<h2>Peers</h2>\n<p>{len(views)} peers: {counts}</p>\n"
    pages = max(1, -(-len(views) // PAGE_ROWS))
    page = min(max(1, page), pages)
    shown = views[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]
    seconds = (snapshot.time_ns - previous.time_ns) / 1e9 if previous else 0.0
    nav = _pages(page, pages)
    yield nav
    yield from _table(shown, listed.rates(shown, seconds), snapshot.time_ns / 1e9, snapshot.availability or {})
    yield nav
    yield from _timeline(timeline.window(now), snapshot, now)
    yield "</body></html>\n"


def _table(views: list[PeerView], per_peer: dict[tuple[str, str], tuple[float, float]],
           taken: float, figures: Mapping[tuple[str, str], Availability]) -> Iterator[str]:
    """The peer table; ages are as of ``taken``, the snapshot's time."""
    esc = html.escape
    head = ("interface", "peer", "state", "since", "handshake", "rtt", "loss 5m", "rtt p50/p90/p99", "jitter",
            "path mtu", "rx", "tx", "endpoint", "30 days")
    yield "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>\n"
    for start in range(0, len(views), CHUNK_ROWS):
        rows = []
        for p in views[start:start + CHUNK_ROWS]:
            status = p.status.value + (f" ({p.degraded})" if p.degraded else "")
            since = time.strftime("%H:%M:%S", time.gmtime(p.since))
            rtt = "silent" if p.probe_silent else "-" if p.rtt_ms is None else f"{p.rtt_ms:.1f} ms"
            rx, tx = per_peer.get((p.interface, p.public_key), (None, None))
            loss, quantiles, jitter = quality.texts(quality.fields(p.quality))
            hs = "never" if p.handshake_age_s is None else f"{human_age(p.handshake_age_s)} ago"
            rows.append(
                f"<tr><td>{esc(p.interface)}</td><td title=\"{esc(p.public_key)}\">"
                f'<a href="{esc(peer_path(p))}">{esc(p.friendly_name or p.public_key[:8] + "…")}</a></td>'
                f'<td><span class="state {state_class(status)}">{esc(status)}</span></td>'
                f"<td>{human_age(p.since_s(taken))} <small>(since {since} UTC)</small></td>"
                f'<td class="num">{hs}</td><td class="num">{rtt}</td><td class="num">{loss}</td>'
                f'<td class="num">{quantiles}</td><td class="num">{jitter}</td>'
                f'<td class="num">{"-" if p.path_mtu is None else p.path_mtu}</td>'
                f'<td class="num">{human_rate(rx)}</td><td class="num">{human_rate(tx)}</td>'
                f"<td>{esc(endpoint_text(p.endpoint, p.endpoint_host))}</td>"
                f"<td>{days_bar(figures.get((p.interface, p.public_key)), taken)}</td></tr>\n")
        yield "".join(rows)
    yield "</tbody></table>\n"


def peer_path(view: PeerView) -> str:
    """The page's path: the interface and the friendly name (else the public key), each quoted
    whole (a namespace's interface has a slash; a key has / + =)."""
    name = view.friendly_name or view.public_key
    return f"/peer/{urllib.parse.quote(view.interface, safe='')}/{urllib.parse.quote(name, safe='')}"


def parse_peer_path(path: str) -> tuple[str, str] | None:
    """(interface, name or key) from a page's path, or None."""
    rest = path.removeprefix("/peer/")
    if rest == path or rest.count("/") != 1:
        return None
    iface, name = rest.split("/")
    return urllib.parse.unquote(iface), urllib.parse.unquote(name)


def _pages(page: int, pages: int) -> str:
    """Links to the table's other pages (worst first); nothing for one page."""
    if pages == 1:
        return ""
    links = [f'<a href="/?page={n}">{n}</a>' if n != page else f"<b>{n}</b>"
             for n in sorted({1, page - 1, page, page + 1, pages}) if 1 <= n <= pages]
    return f"<p>page {page} of {pages} ({PAGE_ROWS} peers a page, the worst first): {' '.join(links)}</p>\n"


def _cell(ratio: float | None) -> str:
    if ratio is None:
        return "anone"
    return "a100" if ratio >= 0.999 else "a99" if ratio >= 0.99 else "a95" if ratio >= 0.95 else "alow"


def percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.2f} %"


def days_bar(avail: Availability | None, taken: float) -> str:
    """A cell per UTC day of the last 30, coloured by its availability, the figure in its title
    (no script), then the 30-day figure; empty without a history store."""
    if avail is None:
        return "-"
    first = int(taken // 86400) - len(avail.days) + 1
    cells = "".join(f'<span class="{_cell(r)}" title="{time.strftime("%Y-%m-%d", time.gmtime((first + n) * 86400))}: '
                    f'{percent(r)}"></span>' for n, r in enumerate(avail.days))
    return f'<span class="days">{cells}</span> {percent(avail.month)}'


def _timeline(changes: list[Change], snapshot: Snapshot, now: float) -> Iterator[str]:
    """One bar per peer that changed state in the last hour, then the latest changes as text."""
    esc = html.escape
    start = now - TIMELINE_S
    yield "<h2>Last hour</h2>\n"
    if not changes:
        yield "<p>No state changes in the last hour.</p>\n"
        return
    current = {(p.interface, p.public_key): p.status.value for iface in snapshot.interfaces for p in iface.peers}
    by_peer: dict[tuple[str, str], list[Change]] = {}
    for change in changes:
        by_peer.setdefault((change.interface, change.public_key), []).append(change)
    changed = f"{len(by_peer)} peer{'' if len(by_peer) == 1 else 's'} changed state"
    yield (f"<p>{changed}; the others kept theirs. "
           f"<small>{time.strftime('%H:%M', time.gmtime(start))} to "
           f"{time.strftime('%H:%M', time.gmtime(now))} UTC</small></p>\n<table><tbody>\n")
    for pid, peer_changes in sorted(by_peer.items(), key=lambda item: item[1][-1].name):
        # Before wgtrack started, nothing is known: that stretch stays blank.
        spans, at, state = [], max(start, snapshot.started_ns / 1e9), peer_changes[0].old
        for change in peer_changes:
            spans.append((at, change.time, state))
            at, state = max(start, change.time), change.new
        spans.append((at, now, current.get(pid, state)))
        bar = "".join(
            f'<span class="{state_class(s)}" style="width:{100 * max(0.0, b - a) / TIMELINE_S:.2f}%" '
            f'title="{esc(s)} from {time.strftime("%H:%M:%S", time.gmtime(a))}"></span>'
            for a, b, s in spans if b > a)
        yield f'<tr><td>{esc(peer_changes[-1].name)}</td><td><div class="bar">{bar}</div></td></tr>\n'
    yield "</tbody></table>\n<h3>Latest changes</h3>\n<ul>\n"
    for change in reversed(changes[-RECENT_CHANGES:]):
        stamp = time.strftime("%H:%M:%S", time.gmtime(change.time))
        yield (f"<li>{stamp} UTC {esc(change.interface)}/{esc(change.name)}: {esc(change.old)} → "
               f'<span class="state {state_class(change.new)}">{esc(change.new)}</span></li>\n')
    yield "</ul>\n"
