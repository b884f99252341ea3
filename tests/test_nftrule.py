"""The managed nft table of the nflog trigger (wgtrack/nftrule.py): the rules are the documented
ones, the table is replaced whole when the ports change, a table of that name that is not ours is
left alone; and the very ruleset against the real nft, in a namespace of the test's own."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from wgtrack import nftrule
from wgtrack.nftrule import MARK, ManagedRule, rules, ruleset
from wgtrack.wgcmd import WgResult, run_program

DOCS = Path(__file__).resolve().parents[1] / "docs" / "link-state.md"


class FakeNft:
    """Records the runs; ``listing`` is what ``nft list table`` prints (None: no such table)."""

    def __init__(self, listing: str | None = None, fail_apply: bool = False) -> None:
        self.listing = listing
        self.fail_apply = fail_apply
        self.runs: list[tuple[list[str], bytes | None]] = []

    async def __call__(self, argv: list[str], timeout_s: float, stdin: bytes | None) -> WgResult:
        assert timeout_s <= nftrule.NFT_TIMEOUT_S
        self.runs.append((argv, stdin))
        if argv[1:3] == ["list", "table"]:
            if self.listing is None:
                return WgResult("", "nft list exited 1: Error: No such file or directory")
            return WgResult(self.listing, None)
        if self.fail_apply:
            return WgResult("", "nft -f exited 1: Error: Could not process rule: Operation not permitted")
        return WgResult("", None)


def test_the_rules_are_the_documented_ones() -> None:
    prefix = "nft add rule inet wg_handshakes input "
    documented = [line.removeprefix(prefix) for line in DOCS.read_text().splitlines() if line.startswith(prefix)]
    assert documented == rules([51820], 5)
    assert rules([51821, 51820, 51820], 7)[0].startswith("udp dport { 51820, 51821 } udp length 156 ")
    assert rules([], 5) == []


def test_the_table_follows_the_ports_and_is_replaced_only_when_they_change() -> None:
    nft = FakeNft()
    rule = ManagedRule(5, nft)

    async def scenario() -> None:
        await rule.follow([51820])
        await rule.follow([51820])  # unchanged: no nft run
        await rule.follow([51820, 51999])  # an interface came
        await rule.remove()

    asyncio.run(scenario())
    verbs = [argv[1:] for argv, _ in nft.runs]
    assert verbs == [["list", "table", "inet", "wgtrack"], ["-f", "-"], ["-f", "-"],
                     ["delete", "table", "inet", "wgtrack"]]
    first, second = (stdin.decode() for argv, stdin in nft.runs if stdin)
    assert first.startswith("add table inet wgtrack\ndelete table inet wgtrack\ntable inet wgtrack {")
    assert f'comment "{MARK}"' in first and "udp dport 51820 udp length 156" in first
    assert "udp dport { 51820, 51999 } udp length 100" in second
    assert rule.applies == 2


def test_a_table_of_that_name_that_is_not_ours_is_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    nft = FakeNft(listing="table inet wgtrack {\n\tchain input {\n\t}\n}\n")
    rule = ManagedRule(5, nft)

    async def scenario() -> None:
        for _ in range(3):
            await rule.follow([51820])
        await rule.remove()

    asyncio.run(scenario())
    assert [argv[1] for argv, _ in nft.runs] == ["list"]  # looked once, never changed nor deleted
    said = [r.getMessage() for r in caplog.records if "is not wgtrack's" in r.getMessage()]
    assert len(said) == 1 and "manage_rule = no" in said[0]


def test_a_leftover_of_ours_is_replaced_and_a_failing_nft_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wgtrack.nftrule")
    nft = FakeNft(listing=ruleset([51820], 5), fail_apply=True)
    rule = ManagedRule(5, nft)

    async def scenario() -> None:
        for _ in range(3):
            await rule.follow([51820])  # retried each cycle while it fails
        nft.fail_apply = False
        await rule.follow([51820])

    asyncio.run(scenario())
    assert [argv[1] for argv, _ in nft.runs] == ["list", "-f", "-f", "-f", "-f"]
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and "Operation not permitted" in failures[0]
    assert any("installed again" in r.getMessage() for r in caplog.records)


@pytest.mark.lab
def test_the_ruleset_against_the_real_nft() -> None:
    """In a namespace of the test's own: installed when absent, replaced when present (a crashed
    run's leftover), listed with its mark, deleted; a foreign table of that name survives."""
    ns = f"wgtnft{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=20)

    async def in_ns(argv: list[str], timeout_s: float, stdin: bytes | None) -> WgResult:
        return await run_program(["ip", "netns", "exec", ns, *argv], timeout_s, stdin)

    def listing() -> str:
        return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True,
                              timeout=20).stdout

    async def scenario() -> None:
        rule = ManagedRule(5, in_ns)
        await rule.follow([51820])
        assert f'comment "{MARK}"' in listing() and "udp dport 51820 udp length 156" in listing()
        await ManagedRule(5, in_ns).follow([51820, 51999])  # a new run replaces the leftover whole
        assert "udp dport { 51820, 51999 } udp length 100 @th,64,32 0x2000000" in listing()
        assert listing().count("log group 5") == 2
        await rule.remove()
        assert "wgtrack" not in listing()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "wgtrack"], check=True, timeout=20)
        foreign = ManagedRule(5, in_ns)
        await foreign.follow([51820])
        await foreign.remove()
        assert "table inet wgtrack" in listing() and "log group" not in listing()

    try:
        asyncio.run(scenario())
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=20)
