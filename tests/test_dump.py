"""The dump parser over real captures in tests/data, plus garbage and secrets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgtrack.dump import is_public_key, parse_dump

DATA = Path(__file__).parent / "data"
DUMPS = sorted(DATA.glob("*.dump"))


def secrets_in(text: str) -> set[str]:
    """Private keys (interface lines, field 2) and preshared keys (peer lines, field 3)."""
    found = set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            found.add(fields[1])
        elif len(fields) == 9 and fields[2] != "(none)":
            found.add(fields[2])
    return found


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_capture_parses_to_expected(path: Path) -> None:
    dump = parse_dump(path.read_text())
    got = {"interfaces": [dataclasses.asdict(i) for i in dump.interfaces], "problems": list(dump.problems)}
    expected = json.loads(path.with_suffix(".expected.json").read_text())
    # JSON has no tuples; compare through one JSON round trip.
    assert json.loads(json.dumps(got)) == expected


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_private_and_preshared_keys_are_dropped(path: Path) -> None:
    text = path.read_text()
    secrets = secrets_in(text)
    assert secrets, "capture should contain at least one private key"
    rendered = repr(parse_dump(text))
    for secret in secrets:
        assert secret not in rendered


def test_mixed_capture_covers_the_hard_cases() -> None:
    dump = parse_dump((DATA / "lab-mixed.dump").read_text())
    by_name = {i.name: i for i in dump.interfaces}
    assert by_name["wg1"].peers == ()  # interface with zero peers
    peers = {p.public_key[:4]: p for p in by_name["wg0"].peers}
    assert by_name["wg0"].fwmark == 0x1234
    assert peers["qBOW"].keepalive_s == 25
    assert peers["Eus3"].endpoint == "[fd00::5]:51820"
    assert peers["4TFd"].endpoint is None and peers["4TFd"].allowed_ips == ()
    assert peers["4TFd"].latest_handshake == 0


def test_bad_lines_are_reported_without_content_and_others_kept() -> None:
    text = (DATA / "synthetic-zone-and-bad-lines.dump").read_text()
    dump = parse_dump(text)
    assert [p.public_key[:4] for p in dump.interfaces[0].peers] == ["CCCC"]
    assert dump.interfaces[0].peers[0].endpoint == "[fe80::1%eth0]:51820"
    assert len(dump.problems) == 5
    for problem in dump.problems:
        assert "AAAA" not in problem and "DDDD" not in problem


def test_empty_output_means_no_interfaces() -> None:
    assert parse_dump("").interfaces == ()


def test_private_key_in_a_malformed_line_never_reaches_problems() -> None:
    private = "kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY1kEY="
    dump = parse_dump(f"wg0\t{private}\tnot-a-key\t51820\toff\n")
    assert private not in repr(dump)
    assert dump.problems == (("interface public key is malformed", 1, 1),)


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=400))
def test_garbage_never_raises(text: str) -> None:
    parse_dump(text)


@given(st.lists(st.sampled_from(["wg0", "(none)", "off", "0", "1", "[::1]:5", "1.2.3.4:5", "x", "",
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]), min_size=1, max_size=10))
def test_tab_joined_fragments_never_raise(fields: list[str]) -> None:
    parse_dump("\t".join(fields) + "\n" + "\t".join(reversed(fields)))


def test_is_public_key() -> None:
    assert is_public_key("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert not is_public_key("AAAA")
    assert not is_public_key("!" * 43 + "=")


PEER_TAIL = "\t(none)\t(none)\t192.0.2.2/32\t0\t0\t0\toff"
IFACE_KEY = "3+lM+fs3RsV/UxQbPxytzD5PTyVmnWCUghTX1P/wQBU="
PEER_KEY = "5FddUppPDYDCR4pxzC7jW5WF8dW8MjGXuiMKPrLgRAM="


@pytest.mark.parametrize("name", ["wg\0x", "../etc", "a/b/c", "../wg0", "/wg0", "ns/", "x:1", "has space", ".", "..",
                                  "sixteen-bytes-xx", "ns/sixteen-bytes-xx", ""])
def test_interface_names_follow_the_kernels_rules(name: str) -> None:
    dump = parse_dump(f"{name}\tpriv\t{IFACE_KEY}\t51820\toff\n{name}\t{PEER_KEY}{PEER_TAIL}\n")
    assert dump.interfaces == ()
    assert dump.bad_lines == 2
    assert {kind for kind, _, _ in dump.problems} == {"interface name breaks the kernel's rules"}


@pytest.mark.parametrize("field,value,why", [
    (4, "192.0.2.2", "allowed IP is not a CIDR"),
    (4, "192.0.2.2/33", "allowed IP is not a CIDR"),
    (6, str(2**63), "transfer-rx is not a non-negative 64-bit integer"),
    (6, "١٢", "transfer-rx is not a non-negative 64-bit integer"),  # digits, but not ASCII
])
def test_peer_fields_are_validated(field: int, value: str, why: str) -> None:
    fields = ["wg0", PEER_KEY, "(none)", "(none)", "192.0.2.2/32", "0", "0", "0", "off"]
    fields[field] = value
    dump = parse_dump(f"wg0\tpriv\t{IFACE_KEY}\t51820\toff\n" + "\t".join(fields) + "\n")
    assert dump.problems == ((why, 1, 2),)


def test_a_flood_of_bad_lines_is_counted_by_kind_not_kept() -> None:
    good = f"wg0\tpriv\t{IFACE_KEY}\t51820\toff\nwg0\t{PEER_KEY}{PEER_TAIL}\n"
    flood = "".join(f"garbage {i}\n" if i % 2 else f"wg0\tbad-key-{i}{PEER_TAIL}\n" for i in range(200_000))
    dump = parse_dump(good + flood)
    assert len(dump.interfaces[0].peers) == 1  # the good peer is still tracked
    assert dump.bad_lines == 200_000
    assert dump.problems == (("peer public key is malformed", 100_000, 3),
                             ("wrong number of tab-separated fields (expected 5 or 9)", 100_000, 4))


def test_an_interface_of_another_namespace_is_named_netns_slash_ifname() -> None:
    """The kernel never puts a '/' in an interface name: wgtrack's own prefix for the interfaces
    it read in another namespace (netnsreads.qualified) parses, and says which namespace."""
    from wgtrack.dump import interface_labels, split_qualified
    from wgtrack.netnsreads import qualified

    text = qualified("blue-1", f"wg0\tpriv\t{IFACE_KEY}\t51820\toff\nwg0\t{PEER_KEY}{PEER_TAIL}\n")
    dump = parse_dump(text)
    assert dump.bad_lines == 0
    assert [i.name for i in dump.interfaces] == ["blue-1/wg0"]
    assert dump.interfaces[0].peers[0].interface == "blue-1/wg0"
    assert split_qualified("blue-1/wg0") == ("blue-1", "wg0") and split_qualified("wg0") == ("", "wg0")
    assert interface_labels("blue-1/wg0") == [("netns", "blue-1"), ("interface", "wg0")]
    assert interface_labels("wg0") == [("interface", "wg0")]  # the own namespace: 0.2.0's tags, unchanged
