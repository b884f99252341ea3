"""A Debian 12 machine with systemd as PID 1, booted with systemd-nspawn, for the tests that need
a real systemd (the packaged unit) or a real base image (the container image).

The root filesystem comes from Debian's archive with debootstrap (about a minute) and is cached
under ``ROOTFS_CACHE``; every boot runs on a fresh copy, removed afterwards, pass or fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOTFS_CACHE = Path(os.environ.get("WGTRACK_ROOTFS_CACHE", "/var/cache/wgtrack-tests/bookworm-rootfs"))
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "wireguard-tools", "wireguard-go", "python3", "python3-dnspython",
            "iproute2", "nftables")
STAMP = ".wgtrack-rootfs"  # names the package set: a changed list builds the cache again


def debian_rootfs() -> Path:
    """The cached minbase Debian 12 root filesystem with ``PACKAGES``, built when missing."""
    stamp = ",".join(PACKAGES)
    if (ROOTFS_CACHE / STAMP).is_file() and (ROOTFS_CACHE / STAMP).read_text() == stamp:
        return ROOTFS_CACHE
    building = ROOTFS_CACHE.with_name(ROOTFS_CACHE.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={stamp}", "bookworm", str(building),
                           MIRROR], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise AssertionError(f"debootstrap failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    (building / STAMP).write_text(stamp)
    shutil.rmtree(ROOTFS_CACHE, ignore_errors=True)
    building.rename(ROOTFS_CACHE)
    return ROOTFS_CACHE


class Machine:
    """One booted container; ``run`` executes inside it (all of PID 1's namespaces)."""

    def __init__(self, work: Path) -> None:
        self.name = f"wgt{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
        self.root = work / self.name
        self.log = work / f"{self.name}.console"
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.leader = 0

    def boot(self, timeout: float = 90) -> Machine:
        try:
            subprocess.run(["cp", "-a", "--reflink=auto", str(debian_rootfs()), str(self.root)], check=True,
                           timeout=300)
            with open(self.log, "wb") as console:
                self.proc = subprocess.Popen(
                    ["systemd-nspawn", "--register=no", "--keep-unit", "--boot", "--private-network",
                     f"--machine={self.name}", "-D", str(self.root)],
                    stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while not self.leader:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"systemd-nspawn did not boot:\n{self.log.read_text()[-3000:]}")
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
                pids = children.read_text().split() if children.exists() else []
                self.leader = int(pids[0]) if pids else 0
                time.sleep(0.2)
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=timeout).stdout.strip()
            assert state in ("running", "degraded"), f"the machine's systemd says {state!r}"
        except BaseException:
            self.close()
            raise
        return self

    def run(self, *argv: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", *argv], capture_output=True, text=True,
                              timeout=timeout, input=input, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                 "LC_ALL": "C.UTF-8", "TERM": "dumb"})
        if check and done.returncode != 0:
            raise AssertionError(f"in {self.name}: {' '.join(argv)} exited {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def sh(self, script: str, check: bool = True, timeout: float = 60) -> str:
        return self.run("bash", "-euo", "pipefail", "-c", script, check=check, timeout=timeout).stdout

    def spawn(self, script: str) -> subprocess.Popen[bytes]:
        """A long-running shell inside; it ends with the machine."""
        proc = subprocess.Popen(["nsenter", "-t", str(self.leader), "-a", "bash", "-c", script],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, start_new_session=True)
        self.spawned.append(proc)
        return proc

    def close(self) -> None:
        """Power off (SIGTERM to nspawn shuts the machine down), kill if it hangs, remove the copy."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for proc in self.spawned:  # they ended with the machine; killed here if one did not
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


WG_PAIR = r"""
set -euo pipefail
# The hub's side: wg0 in the machine's own network; the peer: wg1 in a namespace of its own with
# its own /var/run/wireguard, so that the hub's `wg show all dump` sees only wg0.
ip netns add peer
ip link add veth-hub type veth peer name veth-peer
ip link set veth-peer netns peer
ip addr add 198.51.100.1/24 dev veth-hub && ip link set veth-hub up
ip -n peer addr add 198.51.100.2/24 dev veth-peer && ip -n peer link set veth-peer up && ip -n peer link set lo up
umask 077
wg genkey > /root/hub.key && wg genkey > /root/peer.key
wg pubkey < /root/hub.key > /root/hub.pub && wg pubkey < /root/peer.key > /root/peer.pub
wireguard-go wg0
wg set wg0 listen-port 51820 private-key /root/hub.key \
    peer "$(cat /root/peer.pub)" allowed-ips 192.0.2.2/32 endpoint 198.51.100.2:51820 persistent-keepalive 2
ip addr add 192.0.2.1/24 dev wg0 && ip link set wg0 up
"""

WG_PEER = r"""
ip netns exec peer unshare -m --propagation private bash -euc '
mount -t tmpfs none /var/run/wireguard
wireguard-go -f wg1 &
for i in $(seq 50); do [ -S /var/run/wireguard/wg1.sock ] && break; sleep 0.1; done
wg set wg1 listen-port 51820 private-key /root/peer.key peer "$(cat /root/hub.pub)" allowed-ips 192.0.2.1/32
ip addr add 192.0.2.2/24 dev wg1 && ip link set wg1 up
wait'
"""
