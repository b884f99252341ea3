"""The status page (``/`` on the exporter port) and ``wgtrack status --watch``, in-process and
with a fake ``wg``; the real-browser test is ``test_statuspage_lab.py``."""

from __future__ import annotations

import dataclasses
import html.parser
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon_helpers import REPO, run_cli, write_config
from wgtrack.events import Event
from wgtrack.history.reading import Availability
from wgtrack.link import Status
from wgtrack.quality import Quality
from wgtrack.snapshot import InterfaceView, PeerView, Snapshot
from wgtrack.statuspage import PAGE_ROWS, Ordered, Timeline, human_rate, rates, render

NOW = 1_800_000_000.0


def peer(name: str, status: Status, rx: int = 0, tx: int = 0, **extra: object) -> PeerView:
    values: dict[str, object] = dict(
        interface="wg0", public_key=f"{name:<43}=".replace(" ", "A"), friendly_name=name,
        endpoint="198.51.100.11:51820", allowed_ips=("192.0.2.11/32",), latest_handshake=int(NOW) - 20,
        handshake_age_s=20, rx_bytes=rx, tx_bytes=tx, keepalive_s=0, status=status, since=NOW - 75.0,
        rtt_ms=1.25, loss=0.0)
    values.update(extra)
    return PeerView(**values)  # type: ignore[arg-type]


def snap(peers: list[PeerView], at: float = NOW, events: tuple[Event, ...] = (), **extra: object) -> Snapshot:
    values: dict[str, object] = dict(
        time_ns=int(at * 1e9), cycle=7, wg_ok=True, wg_error=None,
        interfaces=(InterfaceView("wg0", "I" * 43 + "=", 51820, tuple(peers)),), cycle_duration_s=0.01,
        started_ns=0, events=events, cycle_time_s=2.0, host="hub.test")
    values.update(extra)
    return Snapshot(**values)  # type: ignore[arg-type]


def change(name: str, at: float, old: str, new: str) -> Event:
    key = f"{name:<43}=".replace(" ", "A")
    return Event("peer_down" if new.startswith("down") else "peer_up", at, "m", "wg0", key, name, old, new)


class Cells(html.parser.HTMLParser):
    """The page's table rows as text cells: what a reader without CSS or script sees."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.scripts = 0
        self.external = 0
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
            self._in_cell = True
        self.scripts += tag == "script"
        # an asset or a link off this server (the page's own links to its pages are fine)
        self.external += any(k in ("src", "href") and (k == "src" or "//" in (v or "")) for k, v in attrs) \
            or (tag == "link")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    cells.rows = [[cell.strip() for cell in row] for row in cells.rows]
    return cells


def test_page_lists_worst_first_with_state_since_handshake_rtt_rates_and_hostname() -> None:
    before = snap([peer("peer-a", Status.UP, rx=1000, tx=0), peer("peer-b", Status.UP, rx=0, tx=0)],
                  at=NOW - 2)
    measured = Quality()
    measured.record(NOW - 30, 1, ())
    measured.record(NOW - 20, 3, (1.0, 2.0, 4.0))
    now = snap([peer("peer-a", Status.UP, rx=5000, tx=2000, endpoint_host="a.lab.test",
                     quality=measured.summary(NOW)),
                peer("peer-b", Status.DOWN, rx=0, tx=0, rtt_ms=None),
                peer("peer-c", Status.DEGRADED, degraded="mtu", path_mtu=1144)])
    page = "".join(render(now, before, Timeline(), now=NOW + 1))
    cells = parse(page)
    assert cells.scripts == 0 and cells.external == 0  # works offline, and with script off
    header, first, degraded, second = cells.rows[:4]
    assert header == ["interface", "peer", "state", "since", "handshake", "rtt", "loss 5m", "rtt p50/p90/p99",
                      "jitter", "path mtu", "rx", "tx", "endpoint", "30 days"]
    assert second[13] == "-"  # no history store: no bar
    assert first[1:3] == ["peer-b", "down"]  # the worst first
    assert degraded[1:3] == ["peer-c", "up:degraded (mtu)"]  # then the degraded, with why
    assert second[1:3] == ["peer-a", "up:ok"]
    assert second[3] == "75s (since 07:58:45 UTC)" and second[4] == "20s ago" and second[5] == "1.2 ms"
    assert second[6:9] == ["25.0%", "2.0/3.9/3.9 ms", "1.5 ms"]  # 1 of 4 lost; 4 ms read back within 2.3 %
    assert first[6:9] == ["-", "-", "-"]  # never probed
    assert second[9] == "-" and degraded[9] == "1144"  # path MTU: never searched, and short
    assert second[10:12] == ["2.0 kB/s", "1.0 kB/s"]  # (5000-1000)/2 s and 2000/2 s
    assert second[12] == "a.lab.test → 198.51.100.11:51820"
    assert '<span class="state down">down</span>' in page  # in colour
    assert '<meta http-equiv="refresh" content="2">' in page
    assert '<span class="state degraded">up:degraded (mtu)</span>' in page
    assert "wgtrack on hub.test" in page and "1 down, 1 degraded, 0 idle, 1 up" in page


def test_thirty_day_bar_has_a_cell_per_day_with_its_figure_on_hover() -> None:
    a = peer("peer-a", Status.UP)
    days = (None,) * 27 + (1.0, 0.98, 0.5)
    now = dataclasses.replace(snap([a]), availability={(a.interface, a.public_key): Availability(0.6, 0.8, 0.82,
                                                                                                 days)})
    page = "".join(render(now, None, Timeline(), now=NOW))
    cells = re.findall(r'<span class="(a\w+)" title="([^"]+)"></span>', page)
    assert len(cells) == 30 and cells[0] == ("anone", "2026-12-17: -")  # NOW is 2027-01-15 UTC
    assert cells[-3:] == [("a100", "2027-01-13: 100.00 %"), ("a95", "2027-01-14: 98.00 %"),
                          ("alow", "2027-01-15: 50.00 %")]
    assert parse(page).rows[1][13] == "82.00 %"  # and the 30-day figure


def test_names_from_config_files_are_escaped() -> None:
    page = "".join(render(snap([peer("<script>x</script>", Status.UP)]), None, Timeline(), now=NOW))
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_timeline_shows_the_last_hour_and_forgets_the_rest() -> None:
    timeline = Timeline()
    timeline.record(snap([], events=(change("peer-b", NOW - 4000, "up:ok", "down"),)))  # over an hour ago
    timeline.record(snap([], events=(change("peer-b", NOW - 600, "up:ok", "down"),
                                     change("peer-b", NOW - 300, "down", "up:ok"))))
    current = snap([peer("peer-b", Status.UP)])
    page = "".join(render(current, None, timeline, now=NOW))
    assert len(timeline.window(NOW)) == 2
    assert "1 peer changed state" in page
    # 3300 s up, 300 s down, 300 s up: widths in % of the hour
    assert page.count('class="up" style="width:83.33%"') == 1
    assert page.count('class="down" style="width:8.33%"') == 1
    assert page.count('class="up" style="width:8.33%"') == 1
    assert page.index("down</span></li>") > page.index("up:ok</span></li>")  # newest change first


def test_timeline_memory_is_bounded() -> None:
    timeline = Timeline(entries=100)
    for i in range(1000):
        timeline.record(snap([], events=(change("peer-b", NOW - 1000 + i, "up:ok", "down"),)))
    assert len(timeline.window(NOW)) == 100


def test_big_hub_table_pages_worst_first() -> None:
    views = [peer(f"p{i:04d}", Status.UP) for i in range(2 * PAGE_ROWS + 10)] + [peer("lost", Status.DOWN)]
    now, ordered = snap(views), Ordered()
    first = "".join(render(now, None, Timeline(), now=NOW, ordered=ordered))
    rows = parse(first).rows
    assert rows[1][1] == "lost" and len(rows) == PAGE_ROWS + 1  # the header, then one page
    assert "page 1 of 3" in first and '<a href="/?page=2">2</a>' in first and '<a href="/?page=3">3</a>' in first
    last = parse("".join(render(now, None, Timeline(), now=NOW, page=3, ordered=ordered))).rows
    assert [r[1] for r in last[1:]] == [f"p{i:04d}" for i in range(2 * PAGE_ROWS - 1, 2 * PAGE_ROWS + 10)]
    beyond = parse("".join(render(now, None, Timeline(), now=NOW, page=99, ordered=ordered))).rows
    assert beyond == last  # a page past the end shows the last


def test_rates_ignore_counter_resets_and_new_peers() -> None:
    before = snap([peer("a", Status.UP, rx=9000)], at=NOW - 10)
    after = snap([peer("a", Status.UP, rx=100), peer("b", Status.UP, rx=5)])
    assert rates(after, before) == {("wg0", peer("a", Status.UP).public_key): (0.0, 0.0)}
    assert human_rate(1_500_000) == "1.5 MB/s"


def test_page_before_the_first_cycle_and_after_a_stop() -> None:
    assert "No cycle has completed yet" in "".join(render(None, None, Timeline(), now=NOW))
    stopped = "".join(render(snap([], stopped=True, wg_ok=False, wg_error="wg: timed out"), None, Timeline(),
                             now=NOW))
    assert "wgtrack has stopped" in stopped and "WireGuard is not readable: wg: timed out" in stopped


def test_status_watch_redraws_with_rates_and_colours(tmp_path: Path, fakewg: Path) -> None:
    status_file = tmp_path / "status.json"
    conf = write_config(tmp_path / "c.conf", tmp_path / "out.lp", wg_command=fakewg, ping_interval=0,
                        wg_config_dir=tmp_path)
    conf.write_text(conf.read_text() + f"[output:json]\nfilename = {status_file}\n")
    assert run_cli("-c", str(conf), "--once").returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "wgtrack", "status", "--file", str(status_file),
                             "--watch", "0.3", "--colour", "always"], stdout=subprocess.PIPE, env=env)
    try:
        time.sleep(1.0)
        doc = json.loads(status_file.read_text())  # a cycle 2 s later: 4000 bytes more received
        doc["time"] += 2
        next(i for i in doc["interfaces"] if i["peers"])["peers"][0]["rx_bytes"] += 4000
        (tmp_path / "next.json").write_text(json.dumps(doc))
        (tmp_path / "next.json").rename(status_file)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    text = out.decode()
    assert proc.returncode == 0  # Ctrl-C ends the watch quietly
    frames = text.count("wgtrack status --watch 0.3")
    assert 3 <= frames <= 10, frames
    assert "RX" in text and "TX" in text and "\x1b[90midle" in text and "\x1b[1;31mdown" in text
    assert "2.0 kB/s" in text.rsplit("wgtrack status --watch", 1)[1]
    plain = run_cli("status", "--file", str(status_file), "--colour", "never")
    assert "\x1b[" not in plain.stdout
