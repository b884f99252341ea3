"""The prober against the kernel: loopback answers, a blackholed address does not, replies are
matched to their own probes, sends are paced, and both socket kinds work. Each test runs in a
network namespace of its own (no probe leaves the machine)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wgtrack import icmppacket, probe

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and raw sockets need root (make test)")
REPO = Path(__file__).resolve().parent.parent

# Inside the namespace: lo up, 192.0.2.0/24 and fd00:9::/64 routed into a veth whose other end
# has no address (nothing answers, the packets vanish), as a dead tunnel's would.
_SCRIPT = r"""
import asyncio, json, sys, time
from wgtrack.probe import Prober

async def main(raw):
    p = Prober(rate=float(sys.argv[2]), raw=raw)
    t0 = asyncio.get_running_loop().time()
    targets = ["127.0.0.1", "192.0.2.254", "::1", "fd00:9::2"] * 5
    results = await asyncio.gather(*(p.ping(t, 1, 0.4) for t in targets))
    took = asyncio.get_running_loop().time() - t0
    two = await p.ping("127.0.0.1", 2, 0.4)
    sent, replies = p.sent, p.replies
    # The same through echo(): callbacks, no future; never called from within the call itself.
    loop = asyncio.get_running_loop()
    answers, t0, inside = {}, loop.time(), [True]
    def answer(i):
        return lambda rtt, error: answers.setdefault(i, [rtt is not None, error, inside[0], loop.time() - t0])
    for i, t in enumerate(targets + ["not-an-ip"]):
        p.echo(t, 0.4, answer(i))
    inside[0] = False
    for _ in range(100):  # bounded: 2 s at most
        if len(answers) == len(targets) + 1:
            break
        await asyncio.sleep(0.02)
    p.close()
    closed = []  # an echo still in flight when the prober closes is told so
    p.echo("192.0.2.254", 5.0, lambda rtt, error: closed.append([rtt, error]))
    p.close()
    await asyncio.sleep(0.05)
    echoed = [answers[i] for i in sorted(answers)]
    return {"ok": [r.ok for r in results], "rtt": [r.rtt_ms for r in results], "reason": [r.reason for r in results],
            "took": took, "sent": sent, "replies": replies, "two": [two.ok, two.loss],
            "echo": [a[:3] for a in echoed], "echo_took": max(a[3] for a in echoed), "closed": closed}

print(json.dumps(asyncio.run(main(sys.argv[1] == "raw"))))
"""


def run_in_netns(kind: str, rate: float) -> dict[str, object]:
    ns = f"wgtpr{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=20)
    try:
        for cmd in (["link", "set", "lo", "up"], ["link", "add", "dead0", "type", "veth", "peer", "name", "dead1"],
                    ["link", "set", "dead0", "up"], ["link", "set", "dead1", "up"],
                    ["route", "add", "192.0.2.0/24", "dev", "dead0"],
                    ["-6", "route", "add", "fd00:9::/64", "dev", "dead0"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True, timeout=20)
        # datagram ICMP sockets: allowed to every group, as Debian allows them to users
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"],
                       check=True, timeout=20)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _SCRIPT, kind, str(rate)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=20)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize("kind", ["raw", "datagram"])
def test_answers_silence_and_matching_on_one_socket_per_family(kind: str) -> None:
    got = run_in_netns(kind, rate=1000)
    assert got["ok"] == [True, False, True, False] * 5  # each reply went to its own probe
    rtts = got["rtt"]
    assert isinstance(rtts, list) and all(r is not None and 0 <= r < 400 for r in rtts[::2])
    assert got["reason"] == ["", "no reply", "", "no reply"] * 5
    assert got["sent"] == 22 and got["replies"] == 12  # 20 probes + one of two requests
    assert got["two"] == [True, 0.0]
    # echo(): each answer to its own callback, silence after the timeout, a bad target said
    # asynchronously (a callback from within the call would find its caller half-way)
    assert got["echo"] == [[True, "", False], [False, "", False], [True, "", False], [False, "", False]] * 5 + [
        [False, "not an IP address: not-an-ip", False]]
    assert got["closed"] == [[None, "the prober closed"]]


def test_sends_are_paced_by_probe_rate() -> None:
    got = run_in_netns("raw", rate=50)  # 20 requests at 50/s: 0.38 s of slots, then the 0.4 s timeout
    assert isinstance(got["took"], float) and 0.75 <= got["took"] < 2.0
    assert got["ok"] == [True, False, True, False] * 5
    assert isinstance(got["echo_took"], float) and 0.75 <= got["echo_took"] < 2.0  # echo() is paced the same


def test_wire_format() -> None:
    request = icmppacket.echo_request(socket.AF_INET, 0x1234, 7)
    assert request[:1] == b"\x08" and icmppacket.checksum(request) == 0  # a valid checksum sums to zero
    reply = bytes([0, 0]) + request[2:]
    ip_header = bytes([0x45]) + bytes(19)
    assert icmppacket.echo_reply(socket.AF_INET, ip_header + reply, raw=True) == (0x1234, 7)
    assert icmppacket.echo_reply(socket.AF_INET, reply, raw=False) == (0x1234, 7)
    assert icmppacket.echo_reply(socket.AF_INET, ip_header + request, raw=True) is None  # a request, not a reply
    assert icmppacket.echo_reply(socket.AF_INET6, bytes([129, 0]) + request[2:], raw=False) == (0x1234, 7)
    assert icmppacket.echo_reply(socket.AF_INET6, bytes([1, 0]) + request[2:], raw=False) is None  # unreachable


def test_not_an_address_is_a_failed_result() -> None:
    import asyncio

    result = asyncio.run(probe.Prober().ping("not-an-ip", 1, 0.1))
    assert not result.ok and result.reason == "not an IP address: not-an-ip"


def test_probes_of_links_that_are_up_go_first_when_probes_wait() -> None:
    """10 probes of the slow kind (never up, long down) are queued, paced at 20 a second (the
    slow share of 2,000), when 3 of urgent links arrive: those 3 are sent next, not after the 10
    (loopback answers at once, so sends order the replies)."""
    import asyncio

    async def run() -> tuple[list[float], list[float]]:
        prober = probe.Prober(rate=2000)
        assert prober.slow_rate() == 20
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def timed(urgent: bool) -> float:
            result = await prober.ping("127.0.0.1", 1, 1.0, urgent)
            assert result.ok
            return loop.time() - t0

        background = [asyncio.ensure_future(timed(False)) for _ in range(10)]
        await asyncio.sleep(0.02)
        urgent = await asyncio.gather(*(timed(True) for _ in range(3)))
        rest = await asyncio.gather(*background)
        prober.close()
        return urgent, rest

    urgent, rest = asyncio.run(run())
    assert max(urgent) < sorted(rest)[3]  # only the first slots of the queue went before them
    assert sorted(rest)[-1] >= 0.4  # 10 slow sends at 20 a second: paced, not at once


# Inside a namespace of its own: a raw socket with the prober's filter and one without, both
# open while another process pings loopback (v4 and v6); then one echo request of our own.
_FILTER_SCRIPT = r"""
import json, socket, subprocess, time
from wgtrack import icmpfilter, icmppacket, probe

IDENT = 0x4242
def queued(sock):
    n = 0
    while True:
        try:
            sock.recv(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return n
        n += 1

out = {}
for family, proto, target in ((socket.AF_INET, socket.IPPROTO_ICMP, "127.0.0.1"),
                              (socket.AF_INET6, socket.IPPROTO_ICMPV6, "::1")):
    filtered = socket.socket(family, socket.SOCK_RAW, proto)
    icmpfilter.attach(filtered, family, IDENT)
    plain = socket.socket(family, socket.SOCK_RAW, proto)
    flag = "-4" if family == socket.AF_INET else "-6"
    subprocess.run(["ping", flag, "-c", "50", "-i", "0.002", "-q", target], check=True, timeout=30,
                   stdout=subprocess.DEVNULL)
    foreign = (queued(filtered), queued(plain))
    filtered.sendto(icmppacket.echo_request(family, IDENT, 7), (target, 0))
    time.sleep(0.2)
    ours = []
    while True:
        try:
            data = filtered.recv(2048, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        ours.append(icmppacket.echo_reply(family, data, True))
    out[target] = {"foreign": foreign, "ours": ours}
print(json.dumps(out))
"""


def test_a_raw_socket_is_woken_only_by_its_own_echo_replies() -> None:
    """A ping flood on the host costs the prober nothing: the kernel drops every ICMP packet
    but our own echo replies before they reach the socket (a socket without the filter gets
    the flood's requests and replies)."""
    ns = f"wgtpf{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=20)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=20)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _FILTER_SCRIPT],
                             capture_output=True, text=True, timeout=90, cwd=REPO)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=20)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for target in ("127.0.0.1", "::1"):
        filtered, plain = result[target]["foreign"]
        assert filtered == 0, (target, result)
        assert plain >= 50, (target, result)  # the control: the flood was there to be seen
        assert result[target]["ours"] == [[0x4242, 7]], (target, result)
