"""Shared fixtures: the real WireGuard lab."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab with every peer's first handshake done; removed afterwards, pass or fail."""
    missing = [tool for tool in ("wg", "wireguard-go", "dnsmasq", "nft", "nsenter") if not shutil.which(tool)]
    if os.geteuid() != 0 or missing:
        pytest.fail(f"the lab needs root and {missing or 'its tools'}; run `make test` as root")
    with Lab() as built:
        for peer in built.peer_names:
            built.handshake(peer)
        yield built
