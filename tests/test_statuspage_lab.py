"""The status page in a real headless Chromium, against the daemon tracking a real lab with one
peer down: a screenshot that shows it down in red, and a DOM that is a readable table with
JavaScript off."""

from __future__ import annotations

import calendar
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests import lp
from tests.conftest import ARTIFACTS
from tests.daemon_helpers import start_in_lab
from tests.lab import Lab
from tests.test_statuspage import parse

pytestmark = pytest.mark.lab
PORT = 9586  # inside mon's own network namespace
DOWN_RGB = (0xCF, 0x22, 0x2E)  # statuspage.STYLE: .state.down
UP_RGB = (0x1A, 0x7F, 0x37)


def chromium(lab: Lab, tmp_path: Path, *args: str, path: str = "/") -> str:
    """Headless Chromium in mon's network namespace (where the exporter listens); its
    background traffic is switched off, the network here being closed."""
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (make test installs it)"
    argv = ["nsenter", "-t", str(lab.hosts["mon"].wg_pid), "-n", browser, "--headless", "--no-sandbox",
            "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            *args, f"http://127.0.0.1:{PORT}{path}"]
    shot = next((arg.split("=", 1)[1] for arg in args if arg.startswith("--screenshot=")), None)
    # Headless Chromium on a loaded machine has exited 0 without writing its screenshot (CI, once
    # in many runs; its stdout then lacks "written to file"). That is the browser's flake, not the
    # page's, so a missing file earns a bounded retry; what it printed is kept for the failure.
    for _ in range(3):
        # A profile of its own each run: one that a lingering browser still holds would be
        # handed the URL and this run would exit 0 having done nothing.
        profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
        done = subprocess.run([*argv[:-1], f"--user-data-dir={profile}", argv[-1]],
                              capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr[-2000:]
        if shot is None or Path(shot).exists():
            return done.stdout
    raise AssertionError(f"chromium wrote no {shot} in 3 runs: {done.stdout[-500:]} {done.stderr[-2000:]}")


def count(png: Path, rgb: tuple[int, int, int]) -> tuple[tuple[int, int], int]:
    """The image's size and its pixels of (nearly) this colour (antialiasing only touches edges)."""
    from PIL import Image  # the test extra; the Debian build's unit-test run does not collect it

    image = Image.open(png)
    raw = image.convert("RGB").tobytes()
    r, g, b = rgb
    return image.size, sum(1 for i in range(0, len(raw), 3)
                           if abs(raw[i] - r) <= 6 and abs(raw[i + 1] - g) <= 6 and abs(raw[i + 2] - b) <= 6)


def test_status_page_in_chromium_shows_the_down_peer(lab: Lab, tmp_path: Path) -> None:
    daemon = start_in_lab(lab, tmp_path, f"[output:prometheus]\nlisten = 127.0.0.1:{PORT}\n",
                          cycle_time=1, ping_interval=1, ping_failafternum=2, ping_timeout=0.5)
    b = lab.hosts["b"].public_key
    daemon.wait_for("all up", lambda t: all(daemon.status(lab.hosts[p].public_key) == "up:ok"
                                            for p in lab.peer_names), 30)
    lab.blackhole("b")
    daemon.wait_for("b down", lambda t: lp.peers(t)[b].fields["status"] == "down", 30)

    shot = ARTIFACTS / "statuspage-peer-b-down.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    chromium(lab, tmp_path, f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars")
    (size, down_pixels), (_, up_pixels) = count(shot, DOWN_RGB), count(shot, UP_RGB)
    assert size == (1280, 800)
    print(f"status page screenshot: {shot} ({down_pixels} red pixels, {up_pixels} green)")
    assert down_pixels > 300  # peer-b's red state badge (and its red span in the timeline)
    assert up_pixels > 2 * 300  # peer-a's and peer-c's green badges

    # The page as Chromium built it, read as plain table cells (no CSS). It has no script and
    # its Content-Security-Policy forbids any (test_prometheus checks both), so this is also
    # what a browser with JavaScript off shows. (Headless Chromium cannot dump the DOM or take a
    # screenshot with scriptEnabled=false: it prints nothing and writes no file.)
    dom = chromium(lab, tmp_path, "--dump-dom")
    assert "<script" not in dom
    rows = {row[1]: row for row in parse(dom).rows[1:] if len(row) == 14}
    assert rows["peer-b"][2] == "down"
    assert rows["peer-a"][2] == rows["peer-c"][2] == "up:ok"
    assert rows["peer-a"][12] == "a.lab.test → 198.51.100.11:51820"  # reached by name
    assert rows["peer-a"][9] == "1420"  # its path MTU, searched when it came up: the whole tunnel passes
    assert rows["peer-a"][5].endswith(" ms")  # the probe's RTT
    # The five-minute window of real echoes through the tunnel: none lost while up, RTT quantiles.
    assert rows["peer-a"][6] == "0.0%" and rows["peer-a"][7].endswith(" ms") and rows["peer-a"][7].count("/") == 2
    assert rows["peer-b"][6].endswith("%") and float(rows["peer-b"][6][:-1]) > 0  # its lost echoes
    assert "peer-b" in dom.split("Last hour", 1)[1]  # its change is on the timeline
    ARTIFACTS.joinpath("statuspage-peer-b-down.html").write_text(dom)


def test_peer_page_after_a_restart_shows_the_outage_from_before(lab: Lab, tmp_path: Path) -> None:
    """Issue 23, part 4: b breaks, wgtrack restarts, and b's own page (in Chromium) still shows
    the outage that began before the restart, ongoing, and b down since then."""
    store = tmp_path / "history.db"
    extra = f"[output:prometheus]\nlisten = 127.0.0.1:{PORT}\n[history]\npath = {store}\n"
    settings = {"cycle_time": 1, "ping_interval": 1, "ping_failafternum": 2, "ping_timeout": 0.5}
    daemon = start_in_lab(lab, tmp_path, extra, **settings)
    b = lab.hosts["b"].public_key
    daemon.wait_for("all up", lambda t: all(daemon.status(lab.hosts[p].public_key) == "up:ok"
                                            for p in lab.peer_names), 30)
    lab.blackhole("b")
    daemon.wait_for("b down", lambda t: lp.peers(t)[b].fields["status"] == "down", 30)
    broke = time.time()
    rc, _ = daemon.stop()
    assert rc == 0
    restarted = time.time()
    again = start_in_lab(lab, tmp_path, extra, **settings)
    again.wait_for("a cycle after the restart", lambda t: again.cycle() >= 3, 30)
    assert lp.peers(again.text())[b].fields["status"] == "down"

    shot = ARTIFACTS / "peer-page-outage-across-restart.png"
    shot.unlink(missing_ok=True)
    chromium(lab, tmp_path, f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars",
             path="/peer/wg0/peer-b")
    (size, down_pixels) = count(shot, DOWN_RGB)
    print(f"peer page screenshot: {shot} ({down_pixels} red pixels)")
    assert size == (1280, 800) and down_pixels > 300  # the red badge and the week bar's red span
    dom = chromium(lab, tmp_path, "--dump-dom", path="/peer/wg0/peer-b")
    assert "<script" not in dom
    outages = [row for row in parse(dom.split("<h2>Outages</h2>", 1)[1]).rows[1:] if len(row) == 4]
    assert len(outages) == 1 and outages[0][1] == "ongoing", outages
    started = calendar.timegm(time.strptime(outages[0][0], "%Y-%m-%d %H:%M:%S"))
    assert broke - 30 <= started <= restarted  # it began before the restart
    ARTIFACTS.joinpath("peer-page-outage-across-restart.html").write_text(dom)
    again.stop()
