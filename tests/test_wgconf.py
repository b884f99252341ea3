"""Reading endpoint hostnames and friendly names from wg-quick configs."""

from __future__ import annotations

from pathlib import Path

from wgtrack.wgconf import load_interface_conf, parse_wg_quick

KEY_A = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
KEY_B = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
KEY_C = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA="
PRIVATE = "SECRETSECRETSECRETSECRETSECRETSECRETSECRE0="

CONF = f"""
[Interface]
PrivateKey = {PRIVATE}
Address = 192.0.2.1/24
# friendly_name = not-a-peer

[Peer]
# friendly_name = alice
PublicKey = {KEY_A}
PresharedKey = {PRIVATE}
Endpoint = alice.example.test:51820
AllowedIPs = 192.0.2.2/32

[Peer]
PublicKey={KEY_B}
Endpoint = 198.51.100.7:51820  # numeric: nothing to re-resolve
# friendly_json = {{"owner": "bob", "site": 3}}

[Peer]
PublicKey = {KEY_C}
Endpoint = [fd00::1]:51820
"""


def test_hostnames_and_friendly_names() -> None:
    peers, problems = parse_wg_quick(CONF)
    assert problems == []
    assert peers[KEY_A].endpoint_host == "alice.example.test"
    assert peers[KEY_A].endpoint_port == 51820
    assert peers[KEY_A].friendly_name == "alice"
    assert peers[KEY_B].endpoint_host is None and peers[KEY_B].friendly_name is None
    assert peers[KEY_B].friendly_json == {"owner": "bob", "site": "3"}
    assert peers[KEY_C].endpoint_host is None


def test_secrets_are_not_kept() -> None:
    peers, _ = parse_wg_quick(CONF)
    assert PRIVATE not in repr(peers)


def test_problems_are_reported_and_other_peers_kept() -> None:
    text = (f"[Peer]\nEndpoint = nokey.test:1\n[Peer]\nPublicKey = {KEY_A}\nEndpoint = bad\n"
            f"[Peer]\nPublicKey = {KEY_B}\n")
    peers, problems = parse_wg_quick(text, "wg0.conf")
    assert set(peers) == {KEY_A, KEY_B}
    assert problems[0] == "wg0.conf:1: [Peer] without PublicKey"
    assert problems[1].startswith("wg0.conf:3: Endpoint 'bad'")


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_interface_conf(tmp_path, "wg0") == {}
    (tmp_path / "wg0.conf").write_text(CONF)
    assert load_interface_conf(tmp_path, "wg0")[KEY_A].friendly_name == "alice"
