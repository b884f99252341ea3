"""WireGuard in other network namespaces (``[general] netns = all`` or a list of names).

Which namespaces there are, how to run ``wg`` in one, and how to open a socket in one. Inside
wgtrack an interface of another namespace is named ``<netns>/<ifname>`` (``dump.split_qualified``);
the outputs carry the namespace as a ``netns`` tag or label of its own.

- Named namespaces are those of ``ip netns`` (``/run/netns/<name>``; CNI's pod namespaces are
  there too). With ``all``, a process's namespace that is neither ours nor named counts when
  it holds WireGuard; it is named ``<command>-<pid>`` after its lowest PID.
- ``wg`` runs in a namespace through ``nsenter --net``. Userspace WireGuard (wireguard-go,
  boringtun) keeps its UAPI socket in ``/run/wireguard`` of its own mount namespace: when a
  process of that namespace shows one, wgtrack reads that socket itself through the process's
  root (``wgtrack.uapi``: no process per namespace), and ``wg set`` enters that process's
  mount namespace as well.
- Sockets (probes, the handshake nudge) are opened in a namespace by a short-lived thread
  that enters it with setns(2): a socket stays in the namespace it was created in.

Entering another namespace needs CAP_SYS_ADMIN (docs/container.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from wgtrack.dump import split_qualified, valid_netns_name

NETNS_DIR = Path("/run/netns")
PROC = Path("/proc")
CLONE_NEWNET = 0x40000000
ALL = "all"


@dataclass(frozen=True)
class Namespace:
    name: str
    net: str  # the file that names it: /run/netns/<name> or /proc/<pid>/ns/net
    enter: tuple[str, ...]  # the argv prefix that runs a program in it
    userspace: bool = False  # a process in it shows a userspace WireGuard socket
    named: bool = True  # under /run/netns (else found through a process, with ``all``)
    uapi: str | None = None  # userspace WireGuard's socket directory, as seen from here (read in-process)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _processes(proc: Path, own_net: int | None, own_mnt: int | None) -> dict[int, tuple[int, bool, str]]:
    """{netns inode: (lowest pid, a userspace WireGuard socket is visible, command)} of the
    processes outside our namespace; a socket counts only in another mount namespace."""
    found: dict[int, tuple[int, bool, str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        net = _inode(entry / "ns" / "net")
        if net is None or net == own_net:
            continue
        pid = int(entry.name)
        userspace = False
        if _inode(entry / "ns" / "mnt") != own_mnt:
            with contextlib.suppress(OSError):
                userspace = any(n.endswith(".sock") for n in os.listdir(entry / "root" / "run" / "wireguard"))
        before = found.get(net)
        if before is None or (userspace and not before[1]) or (userspace == before[1] and pid < before[0]):
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            found[net] = (pid, userspace, comm)
    return found


def _enter(net_path: str, process: tuple[int, bool, str] | None,
           proc: Path) -> tuple[tuple[str, ...], bool, str | None]:
    """How to run a program in the namespace, whether its WireGuard is userspace, and where
    its UAPI sockets are seen from here (through the process's root)."""
    if process is not None and process[1]:
        return (("nsenter", "-t", str(process[0]), "--net", "--mount", "--"), True,
                str(proc / str(process[0]) / "root" / "run" / "wireguard"))
    return ("nsenter", f"--net={net_path}", "--"), False, None


def _comm_name(comm: str, pid: int) -> str:
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in comm)[:40] or "process"
    return f"{cleaned}-{pid}"


def discover(wanted: tuple[str, ...], netns_dir: Path = NETNS_DIR, proc: Path = PROC) -> list[Namespace]:
    """The namespaces to read now: the named ones asked for (those that exist), or with
    ``all`` every named one and every other process namespace (each then read once to see
    whether it holds WireGuard). Blocking (a walk of /proc): run it off the loop."""
    own_net, own_mnt = _inode(proc / "self" / "ns" / "net"), _inode(proc / "self" / "ns" / "mnt")
    processes = _processes(proc, own_net, own_mnt)
    find_all = ALL in wanted
    try:
        names = sorted(p.name for p in netns_dir.iterdir()) if find_all else [n for n in wanted if n != ALL]
    except OSError:
        names = []
    found: list[Namespace] = []
    seen = {own_net}
    for name in names:
        inode = _inode(netns_dir / name)
        if inode is None or inode in seen or not valid_netns_name(name):
            continue
        seen.add(inode)
        enter, userspace, uapi = _enter(str(netns_dir / name), processes.get(inode), proc)
        found.append(Namespace(name, str(netns_dir / name), enter, userspace, uapi=uapi))
    if find_all:
        for inode, (pid, userspace, comm) in sorted(processes.items(), key=lambda item: item[1][0]):
            if inode in seen:
                continue
            seen.add(inode)
            path = str(proc / str(pid) / "ns" / "net")
            enter, userspace, uapi = _enter(path, (pid, userspace, comm), proc)
            found.append(Namespace(_comm_name(comm, pid), path, enter, userspace, named=False, uapi=uapi))
    return found


_found: dict[str, Namespace] = {}  # by name, as last found


def register(namespaces: list[Namespace]) -> None:
    """The namespaces found now (what ``path_of`` and ``command`` answer)."""
    _found.clear()
    _found.update((ns.name, ns) for ns in namespaces)


def path_of(name: str) -> str | None:
    ns = _found.get(name)
    return None if ns is None else ns.net


def target(ifname: str, address: str) -> str:
    """A probe target for a peer of ``ifname``: ``<netns>/<address>`` in another namespace."""
    name, _ = split_qualified(ifname)
    return f"{name}/{address}" if name else address


def command(ifname: str, argv: list[str]) -> list[str]:
    """``argv`` about ``ifname``, run in the interface's namespace with its own name there."""
    name, bare = split_qualified(ifname)
    if not name:
        return argv
    ns = _found.get(name)
    # Gone since: nsenter then fails with its own clear reason.
    enter = ns.enter if ns is not None else ("nsenter", f"--net={NETNS_DIR / name}", "--")
    return [*enter, *(bare if arg == ifname else arg for arg in argv)]


# The process's own symbols (libc's among them): ctypes.util.find_library would run ldconfig at
# import, and bring shutil, bz2 and lzma into a daemon that has no use for them.
_libc = ctypes.CDLL(None, use_errno=True)


def open_socket(net: str, family: int, kind: int, proto: int) -> socket.socket:
    """A socket created inside the namespace ``net`` names (a path). The thread that enters it
    ends at once, so no other work ever runs in the wrong namespace."""
    box: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            fd = os.open(net, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"entering network namespace {net}: {os.strerror(code)}")
                box.append(socket.socket(family, kind, proto))
            finally:
                os.close(fd)
        except BaseException as exc:  # handed to the caller's thread
            box.append(exc)

    thread = threading.Thread(target=work, name="netns-socket", daemon=True)
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]
