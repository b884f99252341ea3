"""Userspace WireGuard read in-process (wgtrack/uapi.py): the interface's public key against
``wg pubkey``, the answer of a real wireguard-go against ``wg show all dump`` of the same
interface, and no secret in what it writes."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from pathlib import Path

import pytest

from tests.lab import Lab
from wgtrack import uapi
from wgtrack.dump import parse_dump
from wgtrack.model import PeerRecord


def test_public_key_is_wg_pubkey_s() -> None:
    for _ in range(5):
        private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True, timeout=10).stdout
        public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True,
                                timeout=10).stdout.strip()
        assert base64.b64encode(uapi.x25519_public(base64.b64decode(private))).decode() == public


PRIVATE = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a"
PSK = "188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52"
PEER = "b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33"


def test_answer_to_dump_lines_without_secrets() -> None:
    answer = (f"private_key={PRIVATE}\nlisten_port=51820\nfwmark=0\npublic_key={PEER}\npreshared_key={PSK}\n"
              "protocol_version=1\nendpoint=[fd00::1]:51820\nlast_handshake_time_sec=1800000000\n"
              "last_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=25\n"
              "allowed_ip=192.0.2.2/32\nallowed_ip=fd00::2/128\nerrno=0\n\n")
    text = uapi.dump_lines("wg7", answer)
    for secret in (PRIVATE, PSK):
        assert secret not in text and base64.b64encode(bytes.fromhex(secret)).decode() not in text
    dump = parse_dump(text)
    (iface,) = dump.interfaces
    assert iface.name == "wg7" and iface.listen_port == 51820 and iface.fwmark is None
    assert iface.public_key == base64.b64encode(uapi.x25519_public(bytes.fromhex(PRIVATE))).decode()
    (peer,) = iface.peers
    assert peer.public_key == base64.b64encode(bytes.fromhex(PEER)).decode()
    assert (peer.endpoint, peer.allowed_ips, peer.latest_handshake, peer.rx_bytes, peer.tx_bytes, peer.keepalive_s) \
        == ("[fd00::1]:51820", ("192.0.2.2/32", "fd00::2/128"), 1800000000, 20, 10, 25)


def test_an_error_answer_is_an_error() -> None:
    with pytest.raises(ValueError, match="errno 19"):
        uapi.dump_lines("wg0", "errno=19\n\n")


@pytest.mark.lab
def test_a_real_wireguard_go_reads_as_wg_show_all_dump(tmp_path: Path) -> None:
    """The hub of a lab (two peers with endpoints, handshakes, traffic): the socket's answer, as
    lines, parses to the very records ``wg show all dump`` gives, counters between two reads."""
    with Lab(peers=("a", "b")) as lab:
        lab.handshake("a")
        lab.handshake("b")
        sock = f"/proc/{lab.hosts['mon'].wg_pid}/root/run/wireguard/wg0.sock"

        def ours() -> str:
            return uapi.dump_lines("wg0", asyncio.run(asyncio.wait_for(uapi.ask(sock), 5)))

        before = parse_dump(ours())
        theirs = parse_dump(lab.wg("mon", "show", "all", "dump"))
        after = parse_dump(ours())
    (mine,), (wg,), (late,) = before.interfaces, theirs.interfaces, after.interfaces
    assert (mine.name, mine.public_key, mine.listen_port, mine.fwmark) == \
        (wg.name, wg.public_key, wg.listen_port, wg.fwmark)
    assert len(mine.peers) == len(wg.peers) == 2
    def by_key(peers: tuple[PeerRecord, ...]) -> list[PeerRecord]:
        return sorted(peers, key=lambda p: p.public_key)

    for a, b, c in zip(by_key(mine.peers), by_key(wg.peers), by_key(late.peers), strict=True):
        assert (a.public_key, a.endpoint, a.allowed_ips, a.keepalive_s) == \
            (b.public_key, b.endpoint, b.allowed_ips, b.keepalive_s)
        assert a.latest_handshake <= b.latest_handshake <= c.latest_handshake and b.latest_handshake > 0
        assert a.rx_bytes <= b.rx_bytes <= c.rx_bytes and b.rx_bytes > 0
        assert a.tx_bytes <= b.tx_bytes <= c.tx_bytes
