"""A peer's probe record (wgtrack/quality.py): the histogram's buckets against real loopback
RTTs, the five-minute window (loss, quantiles, jitter, expiry, its bound) and its memory at
10,000 peers."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import tracemalloc
from bisect import bisect_left

from wgtrack import quality
from wgtrack.probe import Prober
from wgtrack.quality import BUCKETS_S, DECODED_MS, REFRESH_S, WINDOW_MAX, WINDOW_S, Quality


def test_buckets_hold_real_loopback_rtts() -> None:
    """Echoes to 127.0.0.1 through the daemon's own prober: each RTT counted in the first bucket
    whose bound it does not pass, the count and the sum those of the replies."""
    prober = Prober(rate=1000)

    async def probes() -> list[tuple[int, tuple[float, ...]]]:
        try:
            return [((r := await prober.ping("127.0.0.1", 5, 1.0)).sent, r.rtts) for _ in range(4)]
        finally:
            prober.close()

    results = asyncio.run(probes())
    record = Quality()
    for sent, rtts in results:
        assert sent == 5 and len(rtts) == 5, "loopback answers every echo"
        record.record(1000.0, sent, rtts)
    measured = [rtt for _, got in results for rtt in got]
    view = record.summary(1000.0)
    assert view.probes == 20 and view.replies == 20 and view.buckets[-1] == 20
    expected = [sum(1 for rtt in measured if rtt / 1000 <= bound) for bound in BUCKETS_S]
    assert list(view.buckets[:-1]) == expected
    assert all(rtt / 1000 <= 0.025 for rtt in measured), measured  # loopback: in the low buckets, which exist for it
    assert math.isclose(view.rtt_sum_s, sum(measured) / 1000, abs_tol=1e-5)


def test_a_bound_is_inclusive_as_prometheus_le_is() -> None:
    record = Quality()
    record.record(0.0, 3, (0.5, 0.50001, 5000.0))
    view = record.summary(0.0)
    assert view.buckets[0] == 1  # 0.5 ms is within le="0.0005"
    assert view.buckets[1] == 2
    assert view.buckets[BUCKETS_S.index(5.0)] == 3 and view.buckets[-1] == 3


def test_window_figures_match_exact_ones_within_the_scale_step() -> None:
    rng = random.Random(7)
    record = Quality()
    rtts: list[float] = []
    sent = 0
    for second in range(250):  # a probe a second, 10 % lost
        rtt = rng.lognormvariate(math.log(30), 0.5)
        lost = rng.random() < 0.1
        record.record(1000.0 + second, 1, () if lost else (rtt,))
        sent += 1
        if not lost:
            rtts.append(rtt)
    view = record.summary(1250.0)
    assert view.window_probes == sent and view.loss == round(1 - len(rtts) / sent, 4)
    ordered = sorted(rtts)
    for got, q in ((view.p50_ms, 0.5), (view.p90_ms, 0.9), (view.p99_ms, 0.99)):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert got is not None and abs(got - exact) / exact < 0.024, (q, got, exact)
    exact_jitter = sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (len(rtts) - 1)
    assert view.jitter_ms is not None and abs(view.jitter_ms - exact_jitter) / exact_jitter < 0.05


def test_old_echoes_leave_the_window_and_the_counters_stay() -> None:
    record = Quality()
    for second in range(60):
        record.record(1000.0 + second, 1, ())  # a minute of loss
    for second in range(60, 400):
        record.record(1000.0 + second, 1, (20.0,))  # then good
    view = record.summary(1400.0)
    assert view.loss == 0.0, "the lost minute is over five minutes old"
    assert WINDOW_S - 20 <= view.window_probes <= WINDOW_S + 20
    assert view.probes == 400 and view.replies == 340  # counters never forget
    # Fed no more (the peer went idle): the figures go as the window ages.
    later = record.summary(1400.0 + WINDOW_S + 30)
    assert later.window_probes == 0 and later.loss is None and later.p50_ms is None
    assert later.probes == 400


def test_the_window_is_bounded_whatever_the_probe_rate() -> None:
    record = Quality()
    for tenth in range(3000):  # ten echoes a second for five minutes
        record.record(1000.0 + tenth / 10, 1, (1.0,) if tenth % 2 else ())
    assert len(record.codes) == WINDOW_MAX
    assert sum(entry & 0xFFFF for entry in record.slots) == WINDOW_MAX
    assert record.summary(1300.0).loss == 0.5


def test_figures_refresh_at_most_every_refresh_s_and_at_once_on_loss() -> None:
    record = Quality()
    record.record(1000.0, 1, (10.0,))
    first = record.summary(1000.0)
    assert record.summary(1001.0) is first  # nothing new: the very same object
    record.record(1002.0, 1, (30.0,))
    second = record.summary(1002.0)
    assert second.probes == 2 and second.p99_ms == first.p99_ms  # window as of 1000, counters now
    record.record(1000.0 + REFRESH_S, 1, (30.0,))
    assert record.summary(1000.0 + REFRESH_S).window_probes == 3
    record.record(1001.0 + REFRESH_S, 1, ())  # a loss shows at once
    assert record.summary(1001.0 + REFRESH_S).loss == 0.25


def test_codes_read_back_within_the_step() -> None:
    for rtt in (0.1, 0.37, 1.0, 12.5, 180.0, 999.0, 4321.0, 10_000.0):
        assert abs(DECODED_MS[quality.encode(rtt)] - rtt) / rtt < 0.024
    assert quality.encode(0.01) == 1 and quality.encode(60_000.0) == 255


def test_memory_per_peer_at_10000_peers_full_windows() -> None:
    """The record of 10,000 probed peers, each window full (the worst case), with their views."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        records = [Quality() for _ in range(10_000)]
        for step in range(WINDOW_MAX // 9 + 2):
            for record in records:
                record.record(1000.0 + step * 5, 9, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 80.0))
        window = (tracemalloc.get_traced_memory()[0] - before) / len(records)
        for record in records:
            record.summary(1000.0 + step * 5)
        viewed = (tracemalloc.get_traced_memory()[0] - before) / len(records)
    finally:
        tracemalloc.stop()
    assert all(len(r.codes) == WINDOW_MAX for r in records)
    print(f"per peer: {window:.0f} B record (window, histogram, counters), {viewed:.0f} B with its view")
    assert window <= 1024
    assert viewed <= 2048  # the view: 14 bucket counts, each an int object once past 256


def test_fields_and_texts() -> None:
    assert quality.fields(None) == {}
    record = Quality()
    record.record(1000.0, 4, (1.0, 2.0, 3.0))
    figures = quality.fields(record.summary(1000.0))
    assert figures["probes"] == 4 and figures["replies"] == 3 and figures["loss_5m"] == 0.25
    loss, rtts, jitter = quality.texts(figures)
    assert loss == "25.0%" and rtts.endswith(" ms") and rtts.count("/") == 2 and jitter.endswith(" ms")
    assert quality.texts({}) == ("-", "-", "-")


def test_bisect_agrees_with_le() -> None:
    for bound in BUCKETS_S:
        assert BUCKETS_S[bisect_left(BUCKETS_S, bound)] == bound
