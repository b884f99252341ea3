"""A link's quality as its probes measure it: counters and an RTT histogram since tracking
began, and a window of the last five minutes of echoes (loss, RTT quantiles, jitter).

Bounded per peer whatever the probe rate: the window keeps at most ``WINDOW_MAX`` echoes,
each in one byte (the RTT on a log scale, 0 for a lost one), with a count per twenty-second
slot to let the oldest go. ``tests/test_quality.py`` measures it at 10,000 peers.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import sub

# Histogram buckets (upper bounds, seconds) for WAN links: a LAN's half millisecond to a
# satellite's or a congested mobile link's seconds. Fixed: they are part of the exported series.
BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WINDOW_S = 300  # the window's span
SLOT_S = 20  # the window lets its oldest echoes go twenty seconds at a time
WINDOW_MAX = 450  # echoes kept at most (1.5 a second for five minutes: a probe a second and failing bursts)
REFRESH_S = 15.0  # a peer's window figures are worked out again at most this often, while none is lost
UNCHANGED, COUNTED, LOST = 0, 1, 2  # what was recorded since the last figures

# One byte per echo: 0 lost, else 1 + the RTT's step on a log scale from 0.1 ms (code 1) to
# 10 s (code 255), each step 4.6 % wider than the last: a figure read back is within 2.3 %.
_LOW_MS, _HIGH_MS = 0.1, 10_000.0
_STEP = math.log(_HIGH_MS / _LOW_MS) / 254
DECODED_MS: tuple[float, ...] = (math.nan, *(round(_LOW_MS * math.exp(_STEP * i), 4) for i in range(255)))


def encode(rtt_ms: float) -> int:
    """The byte that stands for ``rtt_ms`` (clamped to the scale's ends)."""
    if rtt_ms <= _LOW_MS:
        return 1
    return min(255, 1 + round(math.log(rtt_ms / _LOW_MS) / _STEP))


@dataclass(frozen=True, slots=True)
class QualityView:
    """What the outputs show of a peer's probes. The counters and the histogram count every echo
    request since tracking began; the rest is over the last ``WINDOW_S`` (None: nothing to say)."""

    probes: int  # echo requests sent
    replies: int  # echo replies received
    buckets: tuple[int, ...]  # replies per BUCKETS_S bound, cumulative, +Inf last (= replies)
    rtt_sum_s: float
    window_probes: int
    loss: float | None  # lost / sent in the window
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    jitter_ms: float | None  # mean absolute difference of consecutive RTTs in the window


def quantile(ordered: Sequence[int], q: float) -> int:
    """The nearest-rank quantile of a sorted, non-empty sequence (of codes)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class Quality:
    """One peer's probe record (kept only for peers that were probed)."""

    __slots__ = ("changed", "codes", "counts", "probes", "replies", "rtt_sum_s", "slots", "view", "view_at")

    def __init__(self) -> None:
        self.probes = 0
        self.replies = 0
        self.counts = array("I", [0]) * (len(BUCKETS_S) + 1)  # per bucket, not cumulative
        self.rtt_sum_s = 0.0
        self.codes = bytearray()  # the window's echoes, oldest first
        # The window's slots, oldest first, each (wall // SLOT_S) % 2**16 << 16 | its echoes:
        # one array of 4 bytes a slot (the window spans 16 of them, far from the wrap).
        self.slots = array("I")
        self.view: QualityView | None = None
        self.view_at = -math.inf
        self.changed = UNCHANGED

    def record(self, wall: float, sent: int, rtts_ms: Sequence[float]) -> None:
        """One probe: ``sent`` echo requests, answered in ``rtts_ms`` (the others lost)."""
        if sent <= 0:
            return
        sent = min(sent, WINDOW_MAX)
        replies = min(len(rtts_ms), sent)
        self.probes += sent
        self.replies += replies
        for rtt in rtts_ms[:replies]:
            self.counts[bisect_left(BUCKETS_S, rtt / 1000)] += 1
            self.rtt_sum_s += rtt / 1000
        self._expire(wall)
        slot = int(wall // SLOT_S) & 0xFFFF
        slots = self.slots
        if slots and slots[-1] >> 16 == slot:
            slots[-1] += sent
        else:
            slots.append(slot << 16 | sent)
        self.codes += bytes(encode(rtt) for rtt in rtts_ms[:replies]) + bytes(sent - replies)
        excess = len(self.codes) - WINDOW_MAX
        if excess > 0:
            self._drop(excess)
        if sys.getsizeof(self.codes) > len(self.codes) + 120:
            self.codes = bytearray(self.codes)  # let the room its oldest echoes left go
        self.changed = max(self.changed, LOST if replies < sent else COUNTED)

    def restart_window(self) -> None:
        """The link came up: the window's echoes (the failures before it went down, the
        outage's probes) measure a link that is gone, and would hold it degraded for minutes.
        The counters and the histogram keep them."""
        del self.codes[:]
        del self.slots[:]
        self.changed = LOST  # the figures are made again at the next summary

    def _expire(self, wall: float) -> None:
        """Let the slots older than the window go (and all of them if the clock went back)."""
        now = int(wall // SLOT_S)
        gone = 0
        while gone < len(self.slots) and (now - (self.slots[gone] >> 16)) & 0xFFFF >= WINDOW_S // SLOT_S:
            gone += 1
        if gone:
            del self.codes[:sum(entry & 0xFFFF for entry in self.slots[:gone])]
            del self.slots[:gone]

    def _drop(self, excess: int) -> None:
        """The window is full: its oldest ``excess`` echoes go."""
        del self.codes[:excess]
        slots = self.slots
        while excess and slots:
            take = min(excess, slots[0] & 0xFFFF)
            excess -= take
            if take == slots[0] & 0xFFFF:
                del slots[0]
            else:
                slots[0] -= take

    def window_due(self, wall: float) -> bool:
        """Whether ``summary`` would make the window's figures again now (a loss, or REFRESH_S)."""
        return self.changed == LOST or (self.changed == COUNTED and wall - self.view_at >= REFRESH_S)

    def summary(self, wall: float) -> QualityView:
        """The figures as of ``wall``: the same object while nothing was recorded. The counters
        are always current; the window's figures are worked out again at once when echoes were
        lost, else at most every REFRESH_S (60 µs a peer: at 10,000 healthy peers probed every
        second, figures made each cycle would cost a core)."""
        view = self.view
        fresh = wall - self.view_at < REFRESH_S
        if view is not None and not self.changed and (fresh or not self.codes):
            return view  # (a window no longer fed is let go as it ages: the figures go with it)
        if view is not None and self.changed == COUNTED and fresh:
            self.changed = UNCHANGED
            self.view = dataclasses.replace(view, probes=self.probes, replies=self.replies,
                                            buckets=self._cumulative(), rtt_sum_s=round(self.rtt_sum_s, 6))
            return self.view
        self._expire(wall)
        self.view, self.view_at, self.changed = self._figures(), wall, UNCHANGED
        return self.view

    def _cumulative(self) -> tuple[int, ...]:
        return tuple(accumulate(self.counts))

    def _figures(self) -> QualityView:
        codes = self.codes
        answered = codes.replace(b"\0", b"")
        ordered = sorted(answered)  # codes sort as their RTTs do: only the quantiles are decoded
        p50 = p90 = p99 = jitter = None
        if ordered:
            p50, p90, p99 = (DECODED_MS[quantile(ordered, q)] for q in (0.5, 0.9, 0.99))
        if len(answered) > 1:
            values = list(map(DECODED_MS.__getitem__, answered))
            jitter = round(sum(map(abs, map(sub, values[1:], values))) / (len(values) - 1), 4)
        return QualityView(probes=self.probes, replies=self.replies, buckets=self._cumulative(),
                           rtt_sum_s=round(self.rtt_sum_s, 6), window_probes=len(codes),
                           loss=round(1 - len(answered) / len(codes), 4) if codes else None,
                           p50_ms=p50, p90_ms=p90, p99_ms=p99, jitter_ms=jitter)


def fields(view: QualityView | None) -> dict[str, int | float | None]:
    """The figures the Telegraf line, the status file and ``wgtrack status`` share, by the names
    they share (none for a peer never probed)."""
    if view is None:
        return {}
    return {"probes": view.probes, "replies": view.replies, "loss_5m": view.loss, "rtt_p50_ms": view.p50_ms,
            "rtt_p90_ms": view.p90_ms, "rtt_p99_ms": view.p99_ms, "jitter_ms": view.jitter_ms}


def texts(figures: dict[str, int | float | None]) -> tuple[str, str, str]:
    """The window as people read it (``wgtrack status``, the status page), from ``fields``:
    loss, RTT p50/p90/p99 and jitter; "-" where there is nothing to say."""
    loss = figures.get("loss_5m")
    quantiles = [figures.get(f"rtt_{q}_ms") for q in ("p50", "p90", "p99")]
    jitter = figures.get("jitter_ms")
    return ("-" if loss is None else f"{loss * 100:.1f}%",
            "-" if None in quantiles else "/".join(f"{q:.1f}" for q in quantiles if q is not None) + " ms",
            "-" if jitter is None else f"{jitter:.1f} ms")
