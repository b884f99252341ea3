"""The path-MTU search (docs/link-state.md, "Path MTU"): the binary search finds the largest
size that passes within 16 bytes (exactly, where WireGuard's 16-byte padding puts the limit)
in at most 8 probes; the machine asks for it when a link comes up and every mtu_interval, every
minute while the path is short, and never for a link it cannot probe; the DF probes really set
DF (a real socket in a namespace whose route is smaller refuses them), and the route's MTU is
read from the kernel."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
from collections.abc import Iterator

import pytest

from wgtrack import link, netns, pmtu
from wgtrack.link import LinkSettings, LinkState, MtuResult, ProbeResult, Sample, SearchMtu, Status, step
from wgtrack.probe import Prober

WALL = 1_800_000_000.0
ENDPOINT = "198.51.100.9:51820"


def run_bisect(limit: int, mtu: int = 1420) -> tuple[int | None, list[int]]:
    sizes: list[int] = []

    async def passes(size: int) -> bool:
        sizes.append(size)
        return size <= limit

    found, _ = asyncio.run(pmtu.bisect(passes, mtu))
    return found, sizes


def test_the_search_finds_the_largest_passing_multiple_of_16_in_at_most_8_probes() -> None:
    for limit in range(pmtu.FLOOR, 1420):
        found, sizes = run_bisect(limit)
        assert found == max(limit // 16 * 16, pmtu.FLOOR), limit
        assert limit - found < 16
        assert sizes[:2] == [1420, pmtu.FLOOR] and len(sizes) - 2 <= 7  # 7 at a tunnel MTU of 1420
    found, sizes = run_bisect(1136)  # the lab's hole: exact, in 7 probes after the first two
    assert found == 1136 and len(sizes) == 2 + 7 and 1136 in sizes and 1152 in sizes
    found, sizes = run_bisect(9000 - 100, mtu=9000)
    assert len(sizes) - 2 <= pmtu.MAX_STEPS and found is not None and 9000 - 100 - found < 9000 // 2**7


def test_a_full_path_is_one_probe_and_a_lost_small_one_is_no_verdict() -> None:
    assert run_bisect(1420) == (1420, [1420])

    async def nothing(size: int) -> bool:
        return False

    found, reason = asyncio.run(pmtu.bisect(nothing, 1420))
    assert found is None and "small packets were lost too" in reason


def test_the_route_mtu_comes_from_the_kernel() -> None:
    with open("/sys/class/net/lo/mtu") as f:
        loopback = int(f.read())
    assert pmtu.route_mtu("127.0.0.1") == min(65535, loopback)  # IP_MTU says at most 65,535
    assert pmtu.route_mtu("::1") == loopback


@pytest.fixture
def small_route() -> Iterator[str]:
    """A namespace whose route to 198.51.100.0/24 goes out a veth of MTU 1280 (its other end
    answers nothing)."""
    if os.geteuid() != 0:
        pytest.fail("needs root (make test runs as root): a network namespace of its own")
    name = f"wgtpmtu{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"], ["link", "set", "v1", "up"],
                     ["link", "set", "v0", "mtu", "1280", "up"], ["addr", "add", "198.51.100.1/24", "dev", "v0"],
                     ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_df_probes_are_refused_beyond_the_route_mtu_and_small_ones_leave(small_route: str) -> None:
    opener = functools.partial(netns.open_socket, small_route)
    assert pmtu.route_mtu("198.51.100.77", opener) == 1280  # the veth's, read inside the namespace
    prober = Prober(raw=True, opener=opener)

    async def go() -> tuple[ProbeResult, ProbeResult, ProbeResult]:
        try:
            big = await prober.ping("198.51.100.77", 1, 0.3, size=1400)  # DF: the kernel refuses it
            fits = await prober.ping("198.51.100.77", 1, 0.3, size=1280)  # leaves (and is never answered)
            plain = await prober.ping("198.51.100.77", 1, 0.3)
            return big, fits, plain
        finally:
            prober.close()

    big, fits, plain = asyncio.run(go())
    assert not big.ok and big.reason == "Message too long", big
    assert fits.reason == "no reply" and plain.reason == "no reply"


def test_df_probes_of_full_size_are_answered_over_loopback() -> None:
    prober = Prober()

    async def go() -> tuple[ProbeResult, ProbeResult]:
        try:
            return await prober.ping("127.0.0.1", 1, 1.0, size=1420), await prober.ping("::1", 1, 1.0, size=1420)
        finally:
            prober.close()

    v4, v6 = asyncio.run(go())
    assert v4.ok and v6.ok, (v4, v6)


# ---- when the machine asks for a search ----

SETTINGS = LinkSettings(ping_interval=1)


def sample(t: float, target: str | None = "192.0.2.2") -> Sample:
    return Sample(int(WALL + t) - 5, 100, 25, WALL + t, target, ENDPOINT)


def searches(actions: list[link.Action]) -> list[link.Action]:
    return [a for a in actions if isinstance(a, SearchMtu)]


def up_link() -> LinkState:
    state, _ = step(LinkState(), sample(0), 0.0, SETTINGS)
    state, _ = step(state, ProbeResult(ok=True, rtt_ms=1.0), 0.5, SETTINGS)
    assert state.status is Status.UP
    return state


def test_a_link_is_searched_when_it_comes_up_then_every_interval_and_every_minute_while_short() -> None:
    state = up_link()
    state, actions = step(state, sample(1), 1.0, SETTINGS)
    assert searches(actions) == [SearchMtu("192.0.2.2")]  # at once: the session starts
    state, actions = step(state, sample(2), 2.0, SETTINGS)
    assert searches(actions) == []
    state, _ = step(state, MtuResult(1420, 1420), 3.0, SETTINGS)
    state, actions = step(state, sample(500), 500.0, SETTINGS)
    assert searches(actions) == []
    state, actions = step(state, sample(601), 601.0, SETTINGS)
    assert searches(actions) == [SearchMtu("192.0.2.2")]  # mtu_interval, 600 s
    state, _ = step(state, MtuResult(1136, 1420), 603.0, SETTINGS)
    state, actions = step(state, sample(640), 640.0, SETTINGS)
    assert searches(actions) == []
    state, actions = step(state, sample(662), 662.0, SETTINGS)
    assert searches(actions) == [SearchMtu("192.0.2.2")]  # short: again after a minute


def test_no_search_for_a_link_that_cannot_be_probed_or_with_mtu_interval_off() -> None:
    state = up_link()
    _, actions = step(state, sample(1), 1.0, LinkSettings(ping_interval=1, mtu_interval_s=0))
    assert searches(actions) == []
    _, actions = step(state, sample(1, target=None), 1.0, SETTINGS)
    assert searches(actions) == []
    fresh, actions = step(LinkState(), sample(0), 0.0, SETTINGS)  # target not yet proven
    assert searches(actions) == []
    for i in range(3):  # a target that never answers is declared silent: no search, ever
        fresh, actions = step(fresh, ProbeResult(ok=False, sent=1), 1.0 + i, SETTINGS)
        fresh, actions = step(fresh, sample(2 + i), 2.0 + i, SETTINGS)
        assert searches(actions) == []
