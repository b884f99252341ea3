"""PeerView: its shared part, and what it keeps of a dataclass (equality, immutability, a copy
with changes)."""

from __future__ import annotations

import sys

import pytest

from tests.snapshots import KEY_A, KEY_B, peer
from wgtrack.checks import CheckResult


def test_alike_views_share_one_rare_part_and_unlike_ones_do_not() -> None:
    a, b = peer(KEY_A, interface_key="I" * 43 + "="), peer(KEY_B, interface_key="I" * 43 + "=")
    assert a._rare is b._rare  # one object for a hub's alike peers
    c = peer(KEY_B, interface_key="I" * 43 + "=", reresolves=2)
    assert c._rare is not a._rare and c.reresolves == 2 and a.reresolves == 0
    # What a hub keeps per peer: 12 references and the object's headers (280 bytes as the
    # 31-field dataclass it was).
    assert sys.getsizeof(a) <= 128


def test_view_reads_equality_and_copies_as_a_dataclass_did() -> None:
    checks = (CheckResult("tcp://192.0.2.11:22", True, 1.5),)
    a = peer(checks=checks, path_mtu=1280, degraded="mtu", friendly_labels=(("site", "lab"),), counter_base=(5, 6))
    assert (a.checks, a.path_mtu, a.degraded, a.friendly_labels, a.counter_base) == \
        (checks, 1280, "mtu", (("site", "lab"),), (5, 6))
    assert a == peer(checks=checks, path_mtu=1280, degraded="mtu", friendly_labels=(("site", "lab"),),
                     counter_base=(5, 6))
    assert hash(a) == hash(a.replace())
    assert a != a.replace(path_mtu=1300) and a.replace(path_mtu=1300).path_mtu == 1300
    assert a.replace(rx_bytes=1).rx_bytes == 1 and a.replace(rx_bytes=1).checks == checks
    with pytest.raises(AttributeError):
        a.rx_bytes = 5
    assert "path_mtu=1280" in repr(a) and "rx_bytes=1234" in repr(a)


def test_a_view_with_an_unhashable_part_keeps_its_own() -> None:
    labels: object = [("site", "lab")]
    a = peer(friendly_labels=labels)
    assert a.friendly_labels is labels


def test_a_view_made_of_a_record_keeps_that_record_and_reads_its_facts() -> None:
    from wgtrack.model import PeerRecord

    record = PeerRecord("wg0", KEY_A, "198.51.100.11:51820", ("192.0.2.11/32",), 1_794_999_900, 10, 20, 25)
    view = peer(record=record, rx_bytes=110, tx_bytes=120)
    assert view.record is record  # not a copy: the tracker holds the record anyway
    assert (view.interface, view.public_key, view.endpoint, view.allowed_ips, view.latest_handshake,
            view.keepalive_s) == ("wg0", KEY_A, "198.51.100.11:51820", ("192.0.2.11/32",), 1_794_999_900, 25)
    assert (view.rx_bytes, view.tx_bytes) == (110, 120)  # the view's totals, not the record's counters
    assert view == peer(rx_bytes=110, tx_bytes=120)  # equal to one made of the same values
