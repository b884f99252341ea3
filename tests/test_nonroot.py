"""wgtrack as an unprivileged user (``setpriv``: uid/gid 65534, no groups, nothing but the
capabilities named), against the real lab: WireGuard read and set, probes, names from a wg-quick
config that holds no private key. What it needs is what docs/security.md says:

- userspace WireGuard (wireguard-go): the same user as wireguard-go. Its UAPI socket is created
  0700 for its owner, and wireguard-go shuts the interface down when the socket's attributes
  change (inotify), so a chgrp/chmod after the fact is no way in (tried: it killed the lab's
  interface). Kernel WireGuard: CAP_NET_ADMIN (netlink), not verifiable on this machine, which
  has no wireguard module;
- probes: CAP_NET_RAW, or instead ``net.ipv4.ping_group_range`` covering its group;
- the wg-quick config readable, with the private key moved out of it (PostUp sets it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import REPO
from tests.lab import Lab, run

pytestmark = pytest.mark.lab
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-dnspython


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The lab with mon's wireguard-go run as the unprivileged user (CAP_NET_ADMIN only)."""
    with Lab(mon_wg_user=NOBODY) as built:
        for peer in built.peer_names:
            built.handshake(peer)
        yield built


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's own tmp is root's, 0700): a copy of
    the wgtrack package, its config, a wg-quick dir, and its output files."""
    top = Path(tempfile.mkdtemp(prefix="wgtrack-nonroot-", dir="/var/tmp"))
    try:
        top.chmod(0o755)
        shutil.copytree(REPO / "wgtrack", top / "lib" / "wgtrack", ignore=shutil.ignore_patterns("__pycache__"))
        (top / "out").mkdir()
        shutil.chown(top / "out", NOBODY, NOBODY)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def readable_wg_conf(lab: Lab, directory: Path) -> None:
    """The lab's wg0.conf with the private key moved out of it, as docs/security.md shows."""
    directory.mkdir()
    lines = (lab.wg_config_dir / "wg0.conf").read_text().splitlines()
    kept = [line for line in lines if not line.startswith("PrivateKey")]
    kept.insert(1, "PostUp = wg set %i private-key /etc/wireguard/private/%i.key")
    (directory / "wg0.conf").write_text("\n".join(kept) + "\n")
    (directory / "wg0.conf").chmod(0o640)
    shutil.chown(directory / "wg0.conf", "root", NOBODY)


def status(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [p for i in doc["interfaces"] for p in i["peers"]]


def wait(what: str, predicate: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"wgtrack exited {proc.returncode} waiting for {what}:\n{log.read_text()}")
        time.sleep(0.3)
    seen = [(p.get("friendly_name"), p["status"], p.get("rtt_ms")) for p in status(log.parent / "out" / "status.json")]
    raise AssertionError(f"timed out waiting for {what}; status file: {seen}\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("caps, ping_group", [("net_admin,net_raw", None), ("net_admin", f"{NOBODY} {NOBODY}")],
                         ids=["cap_net_raw", "ping_group_range"])
def test_unprivileged_daemon_reads_probes_and_heals(lab: Lab, world: Path, caps: str,
                                                    ping_group: str | None) -> None:
    mon = str(lab.hosts["mon"].wg_pid)
    assert Path(f"/proc/{mon}/root/run/wireguard/wg0.sock").stat().st_uid == NOBODY  # wireguard-go's user
    if ping_group:
        run("nsenter", "-t", mon, "-n", "sysctl", "-q", "-w", f"net.ipv4.ping_group_range={ping_group}")
    readable_wg_conf(lab, world / "wireguard")
    status_file = world / "out" / "status.json"
    conf = world / "wgtrack.conf"
    conf.write_text(f"""[general]
cycle_time = 1
ping_interval = 1
ping_timeout = 0.5
ping_failafternum = 2
cycles_wait = 1
cycles_checkperiod = 1
wg_config_dir = {world / 'wireguard'}
[output:influx]
filename = {world / 'out' / 'wgtrack.lp'}
[output:json]
filename = {status_file}
[history]
path = {world / 'out' / 'history.db'}
""")
    log = world / "log"
    caps_list = ",".join(f"+{c}" for c in caps.split(","))
    argv = ["nsenter", "-t", mon, "-m", "-n",
            "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps=-all,{caps_list}", f"--ambient-caps=-all,{caps_list}", f"--bounding-set=-all,{caps_list}",
            "env", f"PYTHONPATH={world / 'lib'}", SYSTEM_PYTHON, "-m", "wgtrack", "-c", str(conf)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    lab.procs.append(proc)  # the lab stops it, pass or fail

    def peers_up() -> bool:
        peers = status(status_file)
        return len(peers) == 3 and all(p["status"] == "up:ok" and p.get("rtt_ms") is not None for p in peers)

    wait("every peer up, with probe RTTs", peers_up, proc, log)
    assert {p["friendly_name"] for p in status(status_file)} == {"peer-a", "peer-b", "peer-c"}  # conf read
    python = run("pgrep", "-P", str(proc.pid), check=False).split() or [str(proc.pid)]
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{python[0]}/status").read_text().splitlines())
    assert fields["Uid"].split()[0] == str(NOBODY) and fields["Gid"].split()[0] == str(NOBODY)
    wanted = sum(1 << {"net_admin": 12, "net_raw": 13}[c] for c in caps.split(","))
    assert int(fields["CapEff"], 16) == wanted and int(fields["CapBnd"], 16) == wanted

    # wg set as that user: the endpoint of peer-a (a.lab.test) is broken, wgtrack heals it
    a = lab.hosts["a"].public_key
    lab.wg("mon", "set", "wg0", "peer", a, "endpoint", "198.51.100.99:51820")
    wait("peer-a re-resolved and up", lambda: any(p["public_key"] == a and p["status"] == "up:ok"
                                                  and p.get("endpoint_changes", 0) >= 1 for p in status(status_file)),
         proc, log, 40)
    assert lab.endpoint_of("a") == "198.51.100.11:51820"
    assert "Permission denied" not in log.read_text() and "Operation not permitted" not in log.read_text()
