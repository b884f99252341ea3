"""A peer's own page on the status page (``/peer/<interface>/<name or key>``): its state now,
its 30-day availability, the last 7 days as a bar, and from the history store its outages,
sessions and endpoint changes. Plain HTML, no script, like the list."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator

from wgtrack.history.reading import Availability, PeerHistory
from wgtrack.snapshot import PeerView
from wgtrack.statuspage import STYLE, days_bar, endpoint_text, human_age, percent, state_class

WEEK_S = 7 * 86400.0


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _week_bar(spans: list[tuple[float, float, str | None]], now: float) -> str:
    esc = html.escape
    start = now - WEEK_S
    return "".join(
        f'<span class="{state_class(s) if s else "none"}" style="width:{100 * (b - a) / WEEK_S:.3f}%" '
        f'title="{esc(s or "not tracked")} from {_when(a)} UTC"></span>'
        for a, b, s in spans if b > max(a, start))


def render_peer(view: PeerView, avail: Availability | None, past: PeerHistory | None, now: float,
                note: str = "") -> Iterator[str]:
    """The page, chunk by chunk; ``past`` None: no history store (``note`` says why)."""
    esc = html.escape
    name = view.friendly_name or view.public_key[:8] + "…"
    status = view.status.value + (f" ({view.degraded})" if view.degraded else "")
    yield (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(view.interface)}/{esc(name)}'
           f"</title><style>{STYLE}.bar .none{{background:#eee}}</style></head><body>\n"
           f'<p><a href="/">all peers</a></p>\n<h1>{esc(view.interface)}/{esc(name)}</h1>\n'
           f"<p><small>{esc(view.public_key)}</small></p>\n"
           f'<p><span class="state {state_class(status)}">{esc(status)}</span> for {human_age(view.since_s(now))} '
           f"(since {_when(view.since)} UTC); endpoint {esc(endpoint_text(view.endpoint, view.endpoint_host))}</p>\n")
    if avail is not None:
        yield (f"<p>availability: 24 h {percent(avail.day)}, 7 days {percent(avail.week)}, 30 days "
               f"{days_bar(avail, now)}</p>\n")
    if past is None:
        yield f"<p>{esc(note or 'No history store.')}</p></body></html>\n"
        return
    yield f'<h2>Last 7 days</h2>\n<div class="bar">{_week_bar(past.spans, now)}</div>\n'
    yield "<h2>Outages</h2>\n"
    yield _rows(("start (UTC)", "end (UTC)", "duration", "reason"),
                [(_when(o.start), _when(o.end) if o.end else "ongoing", human_age(o.duration(now)), o.reason)
                 for o in reversed(past.outages)], "No outage in the last 30 days.")
    yield "<h2>Sessions</h2>\n"
    yield _rows(("from (UTC)", "last handshake (UTC)", "length"),
                [(_when(s), _when(e) if e else "open", human_age((e or now) - s)) for _, _, s, e in
                 reversed(past.sessions)], "No session in the last 30 days.")
    yield "<h2>Endpoint changes</h2>\n"
    yield _rows(("time (UTC)", "from", "to", "how"),
                [(_when(t), old or "(none)", new, "set by wgtrack" if kind == "set" else "roamed")
                 for t, _, _, old, new, kind in reversed(past.endpoints)], "No endpoint change in the last 30 days.")
    yield "</body></html>\n"


def _rows(head: tuple[str, ...], rows: list[tuple[str, ...]], empty: str) -> str:
    esc = html.escape
    if not rows:
        return f"<p>{esc(empty)}</p>\n"
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>\n" +
            "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>\n" for row in rows) +
            "</tbody></table>\n")
