"""``wgtrack install`` / ``wgtrack uninstall``: the systemd unit, a sample config and the man page
for installs that are not the Debian package (a venv, pipx), as 0.2.0's commands did.

Idempotent: a file already as it should be is left alone and the commands say so. The config
is never overwritten or removed unless asked (``--purge``): it is the operator's. The unit is
the packaged, hardened one with its commands pointed at this interpreter, marked as ours so
that ``uninstall`` removes only what ``install`` wrote. 0.2.0's own unit (``ExecStart=wgtrack``
at the same path) is recognised and replaced, and kept beside it for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MARKER = "# Installed by `wgtrack install`; `wgtrack uninstall` removes it."
UNIT = Path("etc/systemd/system/wgtrack.service")
CONFIG = Path("etc/wgtrack.conf")
MANPAGE = Path("usr/local/share/man/man1/wgtrack.1")
PACKAGED_UNITS = (Path("lib/systemd/system/wgtrack.service"), Path("usr/lib/systemd/system/wgtrack.service"))
SAVED_020_SUFFIX = ".wgtrack-0.2.0"  # not a unit name systemd loads
SYSTEMCTL_TIMEOUT_S = 60.0


def data(name: str) -> str:
    return resources.files("wgtrack").joinpath("data", name).read_text()


def unit_text(python: str) -> str:
    """The packaged unit, run by ``python -m wgtrack`` (this venv's interpreter), marked as ours."""
    lines = [MARKER]
    # A venv in a home directory (root's included) must stay readable to the service.
    in_home = python.startswith(("/home/", "/root/", "/run/user/"))
    for line in data("wgtrack.service").splitlines():
        if line == "ProtectHome=yes" and in_home:
            line = "ProtectHome=read-only"
        if line.startswith("Documentation="):
            line = "Documentation=man:wgtrack(1)"
        if line.startswith(("ExecStartPre=/usr/bin/wgtrack ", "ExecStart=/usr/bin/wgtrack ")):
            key, _, rest = line.partition("=/usr/bin/wgtrack ")
            line = f"{key}={python} -m wgtrack {rest}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def is_020_unit(text: str) -> bool:
    """0.2.0's ``wgtrack install`` wrote a plain unit running ``wgtrack`` from PATH."""
    return MARKER not in text and "ExecStart=wgtrack" in text.replace(" ", "")


@dataclass
class Installer:
    root: Path  # "/" for real; a directory in tests (systemctl is then not run)
    python: str = sys.executable

    def say(self, line: str) -> None:
        print(f"wgtrack: {line}")

    def path(self, relative: Path) -> Path:
        return self.root / relative

    @property
    def live(self) -> bool:
        """Acting on this machine's own systemd (not a staging directory, and systemd runs)."""
        return self.root == Path("/") and Path("/run/systemd/system").is_dir()

    def systemctl(self, *args: str) -> bool:
        if not self.live:
            self.say(f"not running systemctl {' '.join(args)} (no systemd here or --root given)")
            return True
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S)
        if done.returncode != 0:
            self.say(f"systemctl {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
            return False
        return True

    def write(self, relative: Path, text: str, mode: int) -> bool:
        """Write ``text`` unless the file already holds it; True when something changed."""
        target = self.path(relative)
        if target.is_file() and target.read_text() == text:
            self.say(f"{target} is up to date")
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".wgtrack-new")
        temporary.write_text(text)
        temporary.chmod(mode)
        os.replace(temporary, target)
        self.say(f"wrote {target}")
        return True

    def install(self, start: bool) -> int:
        packaged = [p for p in PACKAGED_UNITS if self.path(p).exists()]
        if packaged:
            self.say(f"{self.path(packaged[0])} exists: wgtrack is installed from the Debian package, which "
                     "ships its unit, config and man page; nothing to install")
            return 1
        unit = self.path(UNIT)
        if unit.is_file() and is_020_unit(unit.read_text()):
            saved = unit.with_name(unit.name + SAVED_020_SUFFIX)
            shutil.copy2(unit, saved)
            self.say(f"replacing wgtrack 0.2.0's unit (kept as {saved})")
        changed = self.write(UNIT, unit_text(self.python), 0o644)
        self.write(MANPAGE, data("wgtrack.1"), 0o644)
        config = self.path(CONFIG)
        if config.exists():
            self.say(f"{config} exists: kept as it is (0.2.0's files work unchanged)")
        else:
            self.write(CONFIG, data("wgtrack.conf"), 0o640)
        ok = self.systemctl("daemon-reload") if changed else True
        if start:
            ok = ok and self.systemctl("enable", "--now", "wgtrack.service")
            if ok and changed and self.live:
                ok = self.systemctl("try-restart", "wgtrack.service")  # a running old unit takes the new one
        return 0 if ok else 1

    def uninstall(self, purge: bool) -> int:
        unit = self.path(UNIT)
        ok = True
        if unit.is_file():
            text = unit.read_text()
            if MARKER not in text and not is_020_unit(text):
                self.say(f"{unit} was not written by wgtrack install: left alone")
                return 1
            ok = self.systemctl("disable", "--now", "wgtrack.service")
            unit.unlink()
            self.say(f"removed {unit}")
            ok = self.systemctl("daemon-reload") and ok
        else:
            self.say(f"{unit} is not there: nothing to stop")
        man = self.path(MANPAGE)
        if man.is_file():
            man.unlink()
            self.say(f"removed {man}")
        config = self.path(CONFIG)
        if purge and config.is_file():
            config.unlink()
            self.say(f"removed {config}")
        elif config.is_file():
            self.say(f"{config} kept (yours; --purge removes it)")
        return 0 if ok else 1


def main(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"wgtrack {command}", description=(
        "Install the systemd unit (running this Python's wgtrack), a sample /etc/wgtrack.conf if there "
        "is none, and the man page; then enable and start the service."
        if command == "install" else
        "Stop and disable the service, remove the unit and man page `wgtrack install` wrote; "
        "the config stays unless --purge."))
    parser.add_argument("--root", default="/", help="install under this directory instead (staging, tests); "
                                                    "systemctl is then not run")
    if command == "install":
        parser.add_argument("--no-start", action="store_true", help="install only; do not enable or start")
    else:
        parser.add_argument("--purge", action="store_true", help="also remove /etc/wgtrack.conf")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if root == Path("/") and os.geteuid() != 0:
        print(f"wgtrack {command}: needs root (or --root DIR)", file=sys.stderr)
        return 1
    installer = Installer(root)
    if command == "install":
        return installer.install(start=not args.no_start)
    return installer.uninstall(purge=args.purge)
