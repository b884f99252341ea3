"""The link machine's states and its transition table: the spec, looked up, never restated.

A rule of the machine (``rules.judge``, the re-resolution schedule) reads one observation and
gives a ``Verdict``; ``TRANSITIONS[(status, verdict)]`` is the status that follows. A pair
missing from the table is a move the machine must never make: ``lookup`` raises. The docs'
diagram is drawn from this table, and a test walks the machine until it has taken every entry
and no other.
"""

from __future__ import annotations

import enum


class Target(enum.Enum):
    """What the probe target has shown since tracking began (or since it was configured)."""

    UNPROVEN = "unproven"  # never answered: its silence is not evidence
    ANSWERS = "answers"  # it answered: probes decide
    SILENT = "silent"  # declared silent: the peer is judged by handshakes until it answers


class Status(enum.Enum):
    """What the output ``status`` field says; the values are 0.2.0's names where they apply."""

    UP = "up:ok"
    # Up, but not well: loss, latency or a path-MTU black hole, measured over minutes
    # (``health``). Still up for everything that asks is_up; only RECOVERED makes it up:ok.
    DEGRADED = "up:degraded"
    # Neither evidence of life nor of death: an idle link without keepalive and without
    # probes. 0.2.0 called this "down" 181 s after the last handshake; that was a lie.
    IDLE = "idle"
    DOWN = "down"  # down, and nothing to re-resolve (numeric endpoint or reresolve = no)
    WAITING = "down:waiting"  # down; re-resolution starts after cycles_wait quiet cycles
    CHECKING = "down:checking"  # re-resolving every cycles_checkperiod cycles
    BACKINGOFF = "down:backingoff"  # re-resolving with a doubling interval
    SLOWCHECKING = "down:slowchecking"  # re-resolving every cycles_slowcheckingperiod cycles

    @property
    def is_up(self) -> bool:
        return self is Status.UP or self is Status.DEGRADED

    @property
    def is_down(self) -> bool:
        return self in _DOWN_STATUSES


_DOWN_STATUSES = frozenset((Status.DOWN, Status.WAITING, Status.CHECKING, Status.BACKINGOFF, Status.SLOWCHECKING))
_ALL_DOWN = (Status.DOWN, Status.WAITING, Status.CHECKING, Status.BACKINGOFF, Status.SLOWCHECKING)



class Verdict(enum.Enum):
    """What the evidence of one observation says about the link (``VERDICT_MEANING`` says when)."""

    ALIVE = "alive"
    FRESH = "handshake young"
    UNDECIDED = "probe pending"
    NO_EVIDENCE = "no evidence"
    DEAD = "dead"
    DEAD_WAIT = "dead, waiting"
    DEAD_CHECK = "dead, checking"
    DEAD_BACKOFF = "dead, backing off"
    DEAD_SLOW = "dead, slow checking"
    DEGRADED = "degraded"
    RECOVERED = "recovered"


VERDICT_MEANING = {
    Verdict.ALIVE: "evidence that crossed the tunnel both ways: a completed handshake or a probe reply; or rx "
                   "growth within a session where probes cannot decide. The re-resolution schedule restarts",
    Verdict.FRESH: "a handshake younger than the limit: it keeps a link up, and never brings a down link back (a "
                   "blackholed link keeps its last handshake for three minutes)",
    Verdict.UNDECIDED: "nothing new, and the probe sent this cycle will decide",
    Verdict.NO_EVIDENCE: "no traffic, keepalive or probes: no evidence either way (a new peer awaiting its first "
                         "probe too)",
    Verdict.DEAD: "probes to an answering target failed, the handshake is stale despite keepalive, or no handshake "
                  "completed after our probe; nothing to re-resolve (numeric endpoint, or reresolve = no)",
    Verdict.DEAD_WAIT: "dead, with a hostname endpoint: fewer than cycles_wait quiet cycles",
    Verdict.DEAD_CHECK: "dead, with a hostname endpoint: re-resolving every cycles_checkperiod cycles, for "
                        "cycles_checking cycles",
    Verdict.DEAD_BACKOFF: "dead, with a hostname endpoint: cycles_checking spent, re-resolving at a doubling interval",
    Verdict.DEAD_SLOW: "dead, with a hostname endpoint: the interval reached cycles_slowcheckingperiod",
    Verdict.DEGRADED: "an up link's measured quality has been past a threshold for its entry time: loss or latency "
                      "over the last 5 minutes for 2 minutes, a path-MTU black hole at once",
    Verdict.RECOVERED: "a degraded link's quality has been within every threshold for 5 minutes",
}


DEAD_VERDICTS = {
    Verdict.DEAD: Status.DOWN, Verdict.DEAD_WAIT: Status.WAITING, Verdict.DEAD_CHECK: Status.CHECKING,
    Verdict.DEAD_BACKOFF: Status.BACKINGOFF, Verdict.DEAD_SLOW: Status.SLOWCHECKING,
}
_NOT_DOWN = (None, Status.UP, Status.DEGRADED, Status.IDLE)


def _table() -> dict[tuple[Status | None, Verdict], Status]:
    table: dict[tuple[Status | None, Verdict], Status] = {}
    for old in (*_NOT_DOWN, *_ALL_DOWN):
        table[(old, Verdict.ALIVE)] = Status.UP
        table[(old, Verdict.NO_EVIDENCE)] = Status.IDLE
        # Any dead verdict from any state: a reload may reshape a down peer's schedule (a
        # longer cycles_wait, a hostname gained or lost), so even backward moves are real.
        for verdict, new in DEAD_VERDICTS.items():
            table[(old, verdict)] = new
    for old in _NOT_DOWN:
        table[(old, Verdict.FRESH)] = Status.UP  # a young handshake never revokes down
    for old in (Status.UP, Status.DEGRADED, Status.IDLE):
        table[(old, Verdict.UNDECIDED)] = old  # a new peer awaiting its first probe is idle
    # Life does not cure a degraded link: only its quality does, measured for minutes.
    table[(Status.DEGRADED, Verdict.ALIVE)] = Status.DEGRADED
    table[(Status.DEGRADED, Verdict.FRESH)] = Status.DEGRADED
    table[(Status.UP, Verdict.DEGRADED)] = Status.DEGRADED
    table[(Status.DEGRADED, Verdict.RECOVERED)] = Status.UP
    return table


# (status before, verdict) -> status after; ``None`` before is a newly tracked peer.
TRANSITIONS: dict[tuple[Status | None, Verdict], Status] = _table()


class UndeclaredTransition(AssertionError):
    """The machine reached a (status, verdict) missing from ``TRANSITIONS``: a bug, never input."""


def lookup(status: Status | None, verdict: Verdict) -> Status:
    """The status that follows ``verdict`` in ``status``, as the table says."""
    try:
        return TRANSITIONS[(status, verdict)]
    except KeyError:
        raise UndeclaredTransition(f"{status} on {verdict} is not in TRANSITIONS") from None
