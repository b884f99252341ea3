"""Run the real daemon as a subprocess and watch its output file and log."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tests import lp
from tests.lab import Lab

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m wgtrack ARGS`` from the tree, to completion (30 s at most)."""
    return subprocess.run([sys.executable, "-m", "wgtrack", *args], capture_output=True, text=True, timeout=30,
                          cwd=REPO)


def write_config(path: Path, out: Path, **general: object) -> Path:
    lines = ["[general]"] + [f"{k} = {v}" for k, v in general.items()]
    lines += ["[output:influx]", f"filename = {out}"]
    path.write_text("\n".join(lines) + "\n")
    return path


class Watched:
    """A running daemon, its line-protocol file and its stderr log."""

    def __init__(self, proc: subprocess.Popen[bytes], out: Path, log: Path) -> None:
        self.proc, self.out, self.log_path = proc, out, log

    def text(self) -> str:
        try:
            return self.out.read_text()
        except FileNotFoundError:
            return ""

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for(self, what: str, predicate: Callable[[str], object], timeout: float = 30.0) -> str:
        """Poll the output until ``predicate(text)`` holds; bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if text and predicate(text):
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} waiting for {what}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n--- output:\n{self.text()}"
                             f"\n--- log:\n{self.log()}")

    def wait_log(self, needle: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            time.sleep(0.1)
        raise AssertionError(f"log never said {needle!r}:\n{self.log()}")

    def status(self, key: str) -> str | None:
        point = lp.peers(self.text()).get(key)
        return None if point is None else str(point.fields["status"])

    def cycle(self) -> int:
        text = self.text()
        return int(lp.tracker(text).fields["cycle"]) if text else 0  # type: ignore[call-overload]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        return rc, time.monotonic() - started


def start_in_lab(lab: Lab, tmp_path: Path, extra: str = "", **general: object) -> Watched:
    """The daemon in the lab's mon namespace, reading the lab's wg-quick configs; ``extra`` is
    appended to the config (output sections, peer sections)."""
    out = tmp_path / "wgtrack.lp"
    conf = write_config(tmp_path / "wgtrack.conf", out, **{**general, "wg_config_dir": lab.wg_config_dir})
    if extra:
        conf.write_text(conf.read_text() + extra)
    log = tmp_path / "log"
    return Watched(lab.daemon(conf, stderr=log), out, log)


def start_local(config: Path, out: Path, log: Path, *args: str, stdout: int | IO[bytes] = subprocess.DEVNULL,
                max_files: int | None = None) -> Watched:
    """Start ``python -m wgtrack`` here (no namespace), for tests with a fake wg; ``max_files``
    sets its RLIMIT_NOFILE."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def limit() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "wgtrack", "-c", str(config), *args],
                                stdout=stdout, stderr=err, env=env, preexec_fn=limit)
    return Watched(proc, out, log)


# Debian's own tools and python3, never a developer's pyenv or venv first in PATH.
SYSTEM_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def sh(*args: str, cwd: Path | None = None, timeout: float = 120,
       check: bool = True) -> subprocess.CompletedProcess[str]:
    """A system command with Debian's PATH; raises with its output when it fails (``check``)."""
    proc = subprocess.run(args, cwd=cwd, env=SYSTEM_ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc
