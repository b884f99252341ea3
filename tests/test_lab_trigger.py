"""The nflog trigger in the real lab: an nft ``log group`` rule in the hub's namespace, a road
warrior connecting for the first time, ``cycle_time = 30``; and the trigger's socket and
silence check against the kernel's nfnetlink_log in a namespace of the test's own."""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_helpers import start_in_lab
from tests.lab import MON_TUNNEL, MON_UNDERLAY, WG_PORT, Lab, run, wait_until
from tests.test_lab_lifecycle import HOOK_PORT, jsonl, start_receiver
from wgtrack.trigger import FIRST_READ_S

pytestmark = pytest.mark.lab
GROUP = 7


NFT_PREFIX = "nft add rule inet wg_handshakes input "


def documented_rules(prefix: str = NFT_PREFIX) -> list[str]:
    """The rules docs/link-state.md tells operators to add by hand, as written there."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "link-state.md").read_text()
    rules = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(rules) == 2, rules
    return rules


def log_rule(lab: Lab, host: str, ports: str, control: bool = False) -> str:
    """docs/link-state.md's nft rules in ``host``'s namespace (a table of the lab's own, group
    GROUP, ``ports``), each with a counter; ``control`` adds a last rule counting every packet
    of the port. Returns the table's name."""
    table = f"{lab.prefix[:-1]}nflog"
    chain = [rule.removeprefix(NFT_PREFIX).replace("udp dport 51820", f"udp dport {ports}")
             .replace("log group 5", f"counter log group {GROUP}") for rule in documented_rules()]
    if control:
        chain.append(f"udp dport {ports} counter")
    rules = (f"table inet {table} {{\n  chain i {{ type filter hook input priority 0;\n"
             + "".join(f"    {rule}\n" for rule in chain) + "  }\n}\n")
    run("ip", "netns", "exec", lab.hosts[host].ns, "nft", "-f", "-", input=rules)
    return table


def counters(lab: Lab, host: str, table: str) -> list[int]:
    """Each rule's packet counter, in the chain's order."""
    listing = run("ip", "netns", "exec", lab.hosts[host].ns, "nft", "list", "table", "inet", table)
    return [int(n) for n in re.findall(r"counter packets (\d+)", listing)]


def iptables_rules(ns: str, tool: str, port: int) -> None:
    """docs/link-state.md's iptables (or ip6tables) rules in ``ns``, group GROUP, ``port``, then a
    last rule counting every packet of the port."""
    for line in documented_rules(f"{tool} -I INPUT "):
        argv = shlex.split(line.replace("--dport 51820", f"--dport {port}").replace("--nflog-group 5",
                                                                                      f"--nflog-group {GROUP}"))
        run("ip", "netns", "exec", ns, *argv)
    run("ip", "netns", "exec", ns, tool, "-A", "INPUT", "-p", "udp", "--dport", str(port))


def iptables_counters(ns: str, tool: str) -> list[int]:
    """Packets of the initiation rule, the response rule and the control rule."""
    listing = run("ip", "netns", "exec", ns, tool, "-L", "INPUT", "-v", "-x", "-n").splitlines()[2:]
    pkts = {("init" if "=0x9c" in line else "resp" if "=0x64" in line else "all"): int(line.split()[0])
            for line in listing}
    return [pkts["init"], pkts["resp"], pkts["all"]]


@pytest.mark.parametrize("form", ["nft", "iptables"])
def test_the_documented_rule_logs_handshakes_both_ways_and_never_the_tunnel_s_traffic(form: str) -> None:
    """docs/link-state.md's rules against real WireGuard traffic: an initiation arriving (a
    peer starts the handshake) and a response arriving (the hub starts it) are logged; a ping
    flood through the tunnel reaches the port and none of it is logged."""
    with Lab(peers=("a", "b")) as lab:
        if form == "nft":
            table = log_rule(lab, "mon", str(WG_PORT), control=True)
            count = functools.partial(counters, lab, "mon", table)
        else:
            iptables_rules(lab.hosts["mon"].ns, "iptables", WG_PORT)
            count = functools.partial(iptables_counters, lab.hosts["mon"].ns, "iptables")
        assert count() == [0, 0, 0]
        wait_until("a's handshake with mon", lambda: lab.ping("a", MON_TUNNEL), 20, interval=0.1)
        initiations, responses, _ = count()
        assert initiations >= 1  # a initiated: its initiation arrived at mon
        lab.handshake("b")  # mon initiates: b's response arrives at mon
        after_b = count()
        assert after_b[1] > responses
        lab.exec("a", "ping", "-f", "-q", "-c", "3000", "-s", "1000", "-w", "30", MON_TUNNEL, timeout=40)
        after_flood = count()
        assert after_flood[2] - after_b[2] >= 3000  # the flood's requests reached the port
        assert after_flood[:2] == after_b[:2], (after_b, after_flood)  # and none was logged
        print(f"documented {form} rules: initiations, responses, all packets of the port: {after_b} after the "
              f"handshakes, {after_flood} after a flood of 3000")


def test_the_iptables_rules_match_by_size_and_type_in_both_families() -> None:
    """The iptables and ip6tables lines of the docs, fed UDP datagrams over loopback in a namespace
    of the test's own: a 148-byte type-1 and a 92-byte type-2 message are matched; the same
    sizes with another type, and a type 1 of another size, are not."""
    with _Netns(rule=False) as ns:
        for tool in ("iptables", "ip6tables"):
            iptables_rules(ns.name, tool, WG_PORT)
        script = ("import socket\n"
                  "for family, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
                  "    with socket.socket(family, socket.SOCK_DGRAM) as s:\n"
                  "        for head, size in ((1, 148), (2, 92), (4, 148), (4, 92), (1, 92), (2, 148), (1, 200)):\n"
                  f"            s.sendto(bytes([head, 0, 0, 0]) + bytes(size - 4), (host, {WG_PORT}))\n")
        run("ip", "netns", "exec", ns.name, sys.executable, "-c", script)
        for tool in ("iptables", "ip6tables"):
            assert iptables_counters(ns.name, tool) == [1, 1, 7], tool


def managed_table(lab: Lab) -> str:
    """mon's ``table inet wgtrack`` as nft lists it ("" when there is none)."""
    done = subprocess.run(["ip", "netns", "exec", lab.hosts["mon"].ns, "nft", "list", "table", "inet", "wgtrack"],
                          capture_output=True, text=True, timeout=20)
    return done.stdout if done.returncode == 0 else ""


def test_a_road_warrior_connecting_is_up_within_half_a_second_at_a_30_s_cycle(tmp_path: Path) -> None:
    """With ``manage_rule`` (the default) wgtrack installs the rules itself; a road warrior's
    first handshake is a ``peer_up`` at the webhook within 0.5 s, before any cycle. The table
    follows an interface that comes and goes, and is removed on stop."""
    with Lab(peers=("a", "b")) as lab:
        lab.handshake("a")
        b = lab.hosts["b"].public_key
        # b becomes a road warrior mon has never heard from: no endpoint, no handshake yet
        lab.wg("mon", "set", "wg0", "peer", b, "remove")
        lab.wg("mon", "set", "wg0", "peer", b, "allowed-ips", f"{lab.hosts['b'].tunnel}/32")
        hooks = tmp_path / "hooks.jsonl"
        start_receiver(lab, HOOK_PORT, hooks, tmp_path / "receiver.log")
        w = start_in_lab(lab, tmp_path, f"[trigger:nflog]\ngroup = {GROUP}\n"
                         f"[output:webhook]\nurl = http://127.0.0.1:{HOOK_PORT}/hook\n",
                         cycle_time=30, ping_interval=1, loglevel="debug")
        try:
            w.wait_log(f"nflog trigger: group {GROUP}")
            w.wait_for("b idle", lambda t: w.status(b) == "idle", 15)
            wait_until("wgtrack's table", lambda: f"udp dport {WG_PORT} udp length 156" in managed_table(lab), 10)
            assert f"log group {GROUP}" in managed_table(lab)
            assert w.cycle() == 1
            # A connection comes at any time; right after a publish, MIN_PUBLISH_GAP_S (1 s) would
            # hold the next one back (that rate limit has its own test), so not right after.
            time.sleep(1.2)
            connected = time.time()
            assert lab.ping("b", MON_TUNNEL)  # b's first packet: a handshake initiation to mon
            arrived = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and arrived is None:  # 0.02 s polls, bounded
                ups = [e for e in jsonl(hooks) if e["kind"] == "peer_up" and e["public_key"] == b]
                if ups:
                    arrived, event = time.time(), ups[0]
                time.sleep(0.02)
            assert arrived is not None, w.log()[-3000:]
            print(f"nflog trigger, cycle 30 s: peer_up at the webhook {arrived - connected:.2f} s after b's "
                  f"first packet")
            assert event["old_state"] == "idle" and event["new_state"] == "up:ok"
            assert event["details"] == {"reason": "new handshake"}
            assert arrived - connected <= 0.5
            assert w.cycle() == 1  # the trigger saw it, not a cycle
            assert w.status(b) == "up:ok"
        finally:
            w.stop()
        assert managed_table(lab) == ""  # removed on stop


def test_the_managed_table_follows_interfaces_and_survives_a_crash(tmp_path: Path) -> None:
    """An interface that comes adds its port to the table, one that goes takes it away; after
    ``kill -9`` the table stays (nobody listens: nothing is lost) and the next start replaces it."""
    with Lab(peers=("a",)) as lab:
        w = start_in_lab(lab, tmp_path, f"[trigger:nflog]\ngroup = {GROUP}\n", cycle_time=1, loglevel="debug")
        extra = None
        try:
            wait_until("wgtrack's table", lambda: f"udp dport {WG_PORT} udp length" in managed_table(lab), 15)
            extra = lab.add_interface("wg1")  # listens on 51999
            wait_until("wg1's port", lambda: f"udp dport {{ {WG_PORT}, 51999 }} udp length" in managed_table(lab), 15)
            extra.terminate()
            extra.wait(timeout=10)
            wait_until("wg1's port gone", lambda: f"udp dport {WG_PORT} udp length" in managed_table(lab), 15)
            w.stop(signal.SIGKILL)
            assert "managed by wgtrack" in managed_table(lab)  # a crash leaves it
        finally:
            w.stop()
        (tmp_path / "again").mkdir()
        again = start_in_lab(lab, tmp_path / "again", f"[trigger:nflog]\ngroup = {GROUP}\n", cycle_time=1)
        try:
            again.wait_log("table inet wgtrack logs the handshakes of port 51820 to group", 15)
            assert managed_table(lab).count("log group") == 2  # replaced, not added to
        finally:
            again.stop()
        assert managed_table(lab) == ""
        print(f"managed table, {w.log().count('table inet wgtrack logs')} installs in the first run")


def test_a_forged_initiation_flood_costs_at_most_one_read_per_min_interval(tmp_path: Path) -> None:
    """20,000 forged 148-byte type-1 messages a second from a's namespace at mon's port for 5 s:
    the limit lets 200/s through, and the trigger reads wg0 at most once per min_interval."""
    runs = tmp_path / "wgruns"
    wrapper = tmp_path / "wg"
    wrapper.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {runs}\nexec wg "$@"\n')
    wrapper.chmod(0o755)
    with Lab(peers=("a",)) as lab:
        w = start_in_lab(lab, tmp_path, f"[trigger:nflog]\ngroup = {GROUP}\nmin_interval = 0.5\n",
                         cycle_time=30, wg_command=str(wrapper))
        try:
            wait_until("wgtrack's table", lambda: f"udp dport {WG_PORT} udp length" in managed_table(lab), 15)
            forger = ("import socket, time\n"
                      "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "start, sent = time.monotonic(), 0\n"
                      "while time.monotonic() - start < 5:\n"
                      "    while sent < int((time.monotonic() - start) * 20000):\n"
                      f"        s.sendto(b'\\x01\\0\\0\\0' + bytes(144), ('{MON_UNDERLAY}', {WG_PORT}))\n"
                      "        sent += 1\n"
                      "    time.sleep(0.001)\n"
                      "print(sent)\n")
            began = time.time()
            sent = int(lab.exec("a", sys.executable, "-c", forger, timeout=30))
            ended = time.time()
            time.sleep(1.0)  # a read planned at the end comes within min_interval + RETRY_S
            reads = [float(line.split()[0]) for line in runs.read_text().splitlines() if " show wg0 dump" in line]
            during = [t for t in reads if began <= t <= ended + 1.0]
            allowed = int((ended + 1.0 - began) / 0.5) + 1
            print(f"forged initiations: {sent} sent in {ended - began:.1f} s; {len(during)} triggered reads of wg0 "
                  f"(at most {allowed} allowed); {len(reads)} in all")
            assert sent >= 50_000
            assert 1 <= len(during) <= allowed
            gaps = [b - a for a, b in itertools.pairwise(during)]
            assert all(gap >= 0.45 for gap in gaps), gaps  # the wrapper's own start adds jitter
        finally:
            w.stop()


class _Netns:
    """A namespace of this test's own, with a log rule on one UDP port; removed afterwards."""

    def __init__(self, rule: bool = True) -> None:
        self.name = f"wgtnf{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
        self.rule = rule

    def __enter__(self) -> _Netns:
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "-n", self.name, "link", "set", "lo", "up")
            if not self.rule:
                return self
            rules = (f"table inet wgtnflog {{\n  chain i {{ type filter hook input priority 0; "
                     f"udp dport {WG_PORT} log group {GROUP}; }}\n}}\n")
            run("ip", "netns", "exec", self.name, "nft", "-f", "-", input=rules)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=20)


# Run inside the namespace (setns needs a process of its own): a real nfnetlink_log socket,
# real UDP packets, the trigger's read schedule and its silence check.
_SCRIPT = r"""
import asyncio, json, logging, socket, sys
from wgtrack.trigger import FIRST_READ_S, HandshakeTrigger

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
INIT = b"\x01\0\0\0" + bytes(144)
DATA = b"\x04\0\0\0" + bytes(40)

async def until(condition, limit_s):  # wait for what must have happened (bounded), never a guessed time
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not condition():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)

async def main():
    loop = asyncio.get_running_loop()
    reads = []
    async def read(ifname):
        reads.append((ifname, round(loop.time() - t0, 3)))
        return 1
    t = HandshakeTrigger(7, 0.5, lambda: {51820: "wg0"}, read, asyncio.ensure_future, silence_s=1.0)
    t.start()
    await asyncio.sleep(1.1)  # at least the silence: sleeping longer changes nothing
    t.cycle(handshakes=2)  # nothing logged while cycles found 2 handshakes: the warning
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(DATA, ("127.0.0.1", 51820))  # logged, but no handshake: no read
        await until(lambda: t.packets == 1, 10)
        await asyncio.sleep(3 * FIRST_READ_S)  # a read would have come by now (at least that long)
        assert reads == [], reads
        t0 = loop.time()
        for _ in range(5):  # a burst of initiations: one read, then min_interval holds the next
            udp.sendto(INIT, ("127.0.0.1", 51820))
        await until(lambda: len(reads) == 1 and t.packets == 6, 10)
        udp.sendto(INIT, ("127.0.0.1", 51820))
        await until(lambda: t.packets == 7, 10)
        t.cycle(handshakes=2)  # logged again (within the silence of the last packet)
        await until(lambda: len(reads) == 2, 10)
    print("RESULT " + json.dumps({"reads": reads, "packets": t.packets, "handshakes": t.handshakes}))
    t.stop()

asyncio.run(main())
"""


def test_trigger_reads_on_handshakes_debounced_and_warns_when_the_group_is_silent(tmp_path: Path) -> None:
    with _Netns() as ns:
        out = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-c", _SCRIPT], capture_output=True,
                             text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    warning = next(line for line in lines if line.startswith("WARNING"))
    quiet = re.search(r"nflog group 7: nothing logged for ([0-9.]+) s while 2 handshake\(s\) completed: are the nft "
                      r"rules missing\? docs/link-state\.md has them, for port 51820 and group 7", warning)
    assert quiet is not None and float(quiet.group(1)) >= 1.0, warning
    assert "INFO nflog group 7: packets are logged again" in lines
    result = json.loads(next(line for line in lines if line.startswith("RESULT ")).removeprefix("RESULT "))
    reads = result["reads"]
    assert [ifname for ifname, _ in reads] == ["wg0", "wg0"]
    first, second = reads[0][1], reads[1][1]
    assert first >= FIRST_READ_S  # the burst coalesced into one read, FIRST_READ_S after it began
    assert second - first >= 0.5  # min_interval
    assert (result["packets"], result["handshakes"]) == (7, 6)


def test_binding_needs_cap_net_admin() -> None:
    """Without CAP_NET_ADMIN the kernel refuses; the reason is an operator's, not errno's."""
    code = ("import sys; from wgtrack.nflog import NflogSocket, NflogError\n"
            "try: NflogSocket(7)\n"
            "except NflogError as exc: print(exc.strerror)\n")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                          "--bounding-set=-all", sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "nflog group 7: needs CAP_NET_ADMIN", out.stderr
