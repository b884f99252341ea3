"""WireGuard in other network namespaces, in the real lab: wgtrack runs in the host's own
namespace, where there is no WireGuard at all, with ``netns = <mon> <b> <c>``: mon's hub
(wireguard-go, its socket in a mount namespace of its own) and two spokes. One break is seen,
one re-resolution heals (``wg set`` inside mon's namespace), and one namespace is deleted
mid-run: its peers leave the outputs and that is said once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_helpers import start_local, write_config
from tests.lab import STALE_IP, WG_PORT, Lab, wait_until

pytestmark = pytest.mark.lab


def peers(status: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(interface name as the status file gives it, public key) -> the peer's entry."""
    try:
        doc = json.loads(status.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {(i["name"], p["public_key"]): {**p, "netns": i.get("netns")} for i in doc["interfaces"] for p in i["peers"]}


def test_three_namespaces_a_break_a_heal_and_one_deleted(tmp_path: Path) -> None:
    with Lab(peers=("a", "b", "c")) as lab:
        for peer in ("a", "b", "c"):
            lab.handshake(peer)
        mon, b, c = (lab.hosts[h].ns for h in ("mon", "b", "c"))
        key = {h: lab.hosts[h].public_key for h in ("mon", "a", "b", "c")}
        hosts = tmp_path / "hosts"
        hosts.write_text(f"{lab.hosts['a'].underlay} peer-a.test\n")
        status, out, log = tmp_path / "status.json", tmp_path / "wgtrack.lp", tmp_path / "log"
        conf = write_config(tmp_path / "wgtrack.conf", out, cycle_time=1, ping_interval=1, ping_timeout=0.5,
                            ping_failafternum=2, cycles_wait=1, cycles_checkperiod=1, hosts_file=hosts,
                            netns=f"{mon} {b} {c}", loglevel="info")
        conf.write_text(conf.read_text() + f"[output:json]\nfilename = {status}\n"
                        f"[peer:{key['a']}]\nendpoint = peer-a.test:{WG_PORT}\n")
        w = start_local(conf, out, log)
        try:
            wait_until("mon's three peers up, probed from inside mon's namespace", lambda: all(
                peers(status).get((f"{mon}/wg0", key[h]), {}).get("status") == "up:ok"
                and peers(status)[(f"{mon}/wg0", key[h])].get("rtt_ms") is not None for h in ("a", "b", "c")), 30)
            seen = peers(status)
            assert {name for name, _ in seen} == {f"{mon}/wg0", f"{b}/wg0", f"{c}/wg0"}  # nothing of the host's own
            assert seen[(f"{b}/wg0", key["mon"])]["netns"] == b
            lines = out.read_text()
            assert f"wgtrack,interface=wg0,netns={mon},peer={key['a']} " in lines.replace("\\", ""), lines
            # Read in-process from each wireguard-go's socket (no process per namespace), the
            # interface's own key worked out from the private one it answers with.
            for ns in (mon, b, c):
                assert f"netns {ns}: read through the userspace WireGuard sockets in /proc/" in w.log()
            interfaces = {i["name"]: i for i in json.loads(status.read_text())["interfaces"]}
            assert interfaces[f"{mon}/wg0"]["public_key"] == key["mon"]

            # a break: b's WireGuard traffic dropped; mon's namespace sees b go down
            lab.blackhole("b")
            wait_until("b down in mon's namespace",
                       lambda: peers(status)[(f"{mon}/wg0", key["b"])]["status"].startswith("down"), 30)

            # a heal by re-resolution: mon's endpoint of a goes stale; wgtrack resolves peer-a.test
            # (the hosts file) and sets it back with wg set, inside mon's namespace
            lab.wg("mon", "set", "wg0", "peer", key["a"], "endpoint", f"{STALE_IP}:{WG_PORT}")
            wait_until("mon's endpoint of a set back by wgtrack",
                       lambda: lab.endpoint_of("a") == f"{lab.hosts['a'].underlay}:{WG_PORT}", 60)
            wait_until("a up again", lambda: peers(status)[(f"{mon}/wg0", key["a"])]["status"] == "up:ok", 30)

            # a namespace deleted mid-run: c's interface leaves the outputs, said once
            subprocess.run(["ip", "netns", "del", c], check=True, timeout=20)
            wait_until("c's namespace gone from the status", lambda: all(
                name != f"{c}/wg0" for name, _ in peers(status)), 60)
            assert (f"{mon}/wg0", key["c"]) in peers(status)  # mon's view of c stays
            said = w.log()
            assert said.count(f"netns {c}: gone") == 1, said[-3000:]
            assert f"{c}/wg0" not in out.read_text().split("\n\n")[-1]
            print(f"netns lab: {sum(1 for line in said.splitlines() if 'netns' in line)} netns log lines; "
                  f"endpoint healed to {lab.endpoint_of('a')}")
        finally:
            w.stop()
        assert "Traceback" not in w.log(), w.log()[-3000:]


def test_all_finds_a_process_namespace_holding_userspace_wireguard(tmp_path: Path) -> None:
    """``netns = all``: a process in a namespace of no name (a container's), with a WireGuard
    UAPI socket in its own mount namespace's /run/wireguard, is found, named after its command
    and PID, and entered with its mount namespace."""
    from wgtrack.netns import discover

    script = ("mount -t tmpfs tmpfs /run/wireguard && touch /run/wireguard/wg7.sock && echo ready && "
              "exec sleep 60")
    proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        wait_until("sh to exec sleep", lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep", 10,
                   interval=0.01)
        found = {ns.name: ns for ns in discover(("all",))}
        ours = found.get(f"sleep-{proc.pid}")
        assert ours is not None, sorted(found)
        assert (ours.named, ours.userspace) == (False, True)
        assert ours.enter == ("nsenter", "-t", str(proc.pid), "--net", "--mount", "--")
        assert ours.net == f"/proc/{proc.pid}/ns/net"
        assert all(ns.net != "/proc/self/ns/net" for ns in found.values())
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_service_checks_run_inside_the_peer_s_namespace(tmp_path: Path) -> None:
    """tcp, http and dns checks of a peer in another namespace open their sockets there: the
    services listen on that namespace's loopback, where the host's own loopback has nothing."""
    import asyncio
    import dataclasses
    import os
    import secrets
    import socket
    import sys
    import time

    from wgtrack import checks, netns

    name = f"wgtck{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=20)
        http_port, dns_port = 18080, 15353
        procs.append(subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "http.server", "--bind",
                                       "127.0.0.1", str(http_port)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=tmp_path))
        procs.append(subprocess.Popen(["ip", "netns", "exec", name, "dnsmasq", "--no-daemon", "--no-resolv",
                                       "--no-hosts", f"--port={dns_port}", "--listen-address=127.0.0.1",
                                       "--bind-interfaces", "--address=/svc.test/192.0.2.9", "--user=root",
                                       f"--pid-file={tmp_path / 'dnsmasq.pid'}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def listening() -> bool:
            out = subprocess.run(["ip", "netns", "exec", name, "ss", "-Htlnu"], capture_output=True, text=True,
                                 timeout=10).stdout
            return f"127.0.0.1:{http_port}" in out and f"127.0.0.1:{dns_port}" in out
        deadline = time.monotonic() + 15
        while not listening():
            assert time.monotonic() < deadline, "services did not start"
            time.sleep(0.1)
        netns.register([netns.Namespace(name, f"/run/netns/{name}", ("nsenter", f"--net=/run/netns/{name}", "--"))])
        wanted = [checks.parse_check(f"tcp://127.0.0.1:{http_port}"),
                  checks.parse_check(f"http://127.0.0.1:{http_port}/"),
                  checks.parse_check(f"dns://svc.test@127.0.0.1:{dns_port}")]

        async def run_all(inside: str) -> list[checks.CheckResult]:
            return list(await asyncio.gather(*(checks.run(dataclasses.replace(c, netns=inside), 3.0)
                                               for c in wanted)))

        inside = asyncio.run(run_all(name))
        assert [r.ok for r in inside] == [True, True, True], inside
        with socket.socket() as probe_port:  # nothing of ours listens there in the host's namespace
            assert probe_port.connect_ex(("127.0.0.1", http_port)) != 0
        outside = asyncio.run(run_all(""))
        assert [r.ok for r in outside] == [False, False, False], outside
        netns.register([])
        gone = asyncio.run(run_all(name))
        assert all(not r.ok and f"netns {name} is gone" in (r.error or "") for r in gone), gone
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=20)


def test_the_trigger_listens_inside_each_namespace(tmp_path: Path) -> None:
    """``[trigger:nflog]`` with ``netns``: wgtrack, in the host's namespace, keeps its nft table in
    mon's namespace and listens to the nflog group there; a road warrior connecting to mon is
    ``up:ok`` within a second at a 30 s cycle, before any cycle; the table goes on stop."""
    import time

    def table() -> str:
        done = subprocess.run(["ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "list", "table", "inet", "wgtrack"],
                              capture_output=True, text=True, timeout=20)
        return done.stdout if done.returncode == 0 else ""

    with Lab(peers=("a", "b")) as lab:
        lab.handshake("a")
        mon, b = lab.hosts["mon"].ns, lab.hosts["b"].public_key
        lab.wg("mon", "set", "wg0", "peer", b, "remove")  # b: a road warrior mon has never heard from
        lab.wg("mon", "set", "wg0", "peer", b, "allowed-ips", f"{lab.hosts['b'].tunnel}/32")
        status, out, log = tmp_path / "status.json", tmp_path / "wgtrack.lp", tmp_path / "log"
        conf = write_config(tmp_path / "wgtrack.conf", out, cycle_time=30, ping_interval=1, netns=mon,
                            loglevel="info")
        conf.write_text(conf.read_text() + f"[output:json]\nfilename = {status}\n[trigger:nflog]\ngroup = 7\n")
        w = start_local(conf, out, log)
        try:
            wait_until("the table in mon's namespace", lambda: f"udp dport {WG_PORT} udp length 156" in table(), 15)
            wait_until("b idle", lambda: peers(status).get((f"{mon}/wg0", b), {}).get("status") == "idle", 15)
            assert json.loads(status.read_text())["cycle"] == 1
            time.sleep(1.2)  # not right after a publish (MIN_PUBLISH_GAP_S)
            connected = time.monotonic()
            assert lab.ping("b", "192.0.2.1")  # b's first packet: an initiation to mon
            wait_until("b up", lambda: peers(status)[(f"{mon}/wg0", b)]["status"] == "up:ok", 5, interval=0.02)
            took = time.monotonic() - connected
            print(f"netns trigger: b up:ok in the status file {took:.2f} s after its first packet")
            assert took <= 1.0
            assert json.loads(status.read_text())["cycle"] == 1  # the trigger saw it, not a cycle
        finally:
            w.stop()
        assert table() == ""  # removed on stop, inside the namespace
        assert f"nflog trigger in netns {mon}: group 7" in w.log()
