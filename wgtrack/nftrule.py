"""The nflog trigger's nft rules, kept by wgtrack itself (``[trigger:nflog] manage_rule = yes``).

wgtrack owns one table, ``table inet wgtrack``, marked by its comment. It holds the two rules of
docs/link-state.md for every listen port tracked, and is replaced whole, in one nft transaction,
whenever that set of ports changes (interfaces come and go). It is removed on stop; after a
crash the next start replaces it. A table of that name without the mark is somebody's own (0.3.0's
docs told operators to create one): it is left alone and said once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from wgtrack.wgcmd import WgResult

log = logging.getLogger(__name__)

TABLE = "wgtrack"
MARK = "managed by wgtrack: replaced while it runs, removed when it stops"
# The exact UDP length (the message plus the 8-byte UDP header) and the message's first four
# bytes (its type, then three reserved zero bytes) select handshake initiations and responses
# only: data packets (type 4) and cookie replies never match.
MESSAGES = (("156", "0x01000000"), ("100", "0x02000000"))
LIMIT = "limit rate 200/second burst 200 packets"  # what a forged flood can cost, at most
PRIORITY = -10  # before the usual filter chains (priority 0), so a drop there does not hide it
NFT_TIMEOUT_S = 2.0  # SIGTERM's removal must fit inside the 5 s exit beside the outputs' close

RunNft = Callable[[list[str], float, bytes | None], Awaitable[WgResult]]  # (argv, timeout, stdin)


def rules(ports: Iterable[int], group: int) -> list[str]:
    """The rules for ``ports``, as an operator types them after ``nft add rule <table> <chain>``."""
    listed = sorted(set(ports))
    if not listed:
        return []
    dport = str(listed[0]) if len(listed) == 1 else "{ " + ", ".join(map(str, listed)) + " }"
    return [f"udp dport {dport} udp length {length} @th,64,32 {head} {LIMIT} log group {group}"
            for length, head in MESSAGES]


def ruleset(ports: Iterable[int], group: int) -> str:
    """The whole table, for ``nft -f -``: the leading add makes the delete safe when it is absent,
    so the file replaces it atomically."""
    body = "".join(f"    {rule}\n" for rule in rules(ports, group))
    return (f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n  comment \"{MARK}\"\n"
            f"  chain input {{\n    type filter hook input priority {PRIORITY}; policy accept;\n{body}  }}\n}}\n")


class ManagedRule:
    """The table's owner. ``follow`` (each cycle) installs it for the ports tracked now, when they
    changed; ``remove`` (on stop) deletes it. nft runs through ``run``, always with a deadline."""

    def __init__(self, group: int, run: RunNft, nft: str = "nft") -> None:
        self.group = group
        self._run = run
        self._nft = nft
        self._owned: bool | None = None  # None: not looked yet; False: somebody else's table
        self._applied: frozenset[int] | None = None
        self._failed = False  # one log line per run of failures
        self.applies = 0

    async def follow(self, ports: Iterable[int]) -> None:
        wanted = frozenset(ports)
        if self._owned is None:
            self._owned = await self._ours_or_absent()
        if not self._owned or wanted == self._applied:
            return
        result = await self._run([self._nft, "-f", "-"], NFT_TIMEOUT_S, ruleset(wanted, self.group).encode())
        if result.error is not None:
            if not self._failed:
                log.error("nflog trigger: installing table inet %s failed (tracking goes on at the cycle's pace; "
                          "retried each cycle): %s", TABLE, result.error)
            self._failed = True
            return
        if self._failed:
            log.info("nflog trigger: table inet %s installed again", TABLE)
        self._failed = False
        self._applied = wanted
        self.applies += 1
        log.info("nflog trigger: table inet %s logs the handshakes of port%s %s to group %d", TABLE,
                 "" if len(wanted) == 1 else "s", ", ".join(map(str, sorted(wanted))) or "(none yet)", self.group)

    async def remove(self) -> None:
        """Delete the table if it is ours (also one a crashed run left behind)."""
        if self._owned is None:
            self._owned = await self._ours_or_absent()
        if not self._owned:
            return
        result = await self._run([self._nft, "delete", "table", "inet", TABLE], NFT_TIMEOUT_S, None)
        if result.error is not None and "No such file" not in result.error:
            log.warning("nflog trigger: removing table inet %s failed: %s", TABLE, result.error)
        self._applied = None

    async def _ours_or_absent(self) -> bool:
        listed = await self._run([self._nft, "list", "table", "inet", TABLE], NFT_TIMEOUT_S, None)
        if listed.error is None and MARK not in listed.stdout:
            log.error("nflog trigger: table inet %s exists and is not wgtrack's (it has no comment \"%s\"): left "
                      "alone. Its rules still reach the trigger; to let wgtrack keep its own, rename that table, or "
                      "set manage_rule = no", TABLE, MARK)
            return False
        return True  # ours, or absent, or nft failed (the install says why)
