"""Back-off and failure-run logging, shared by everything that talks to the outside."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

# 2 ** 32 × any sane base is far past every cap: the exponent stops there, so no outage is
# ever long enough to overflow a float (0.3.0 died after ~1,000 failures in a row).
MAX_EXPONENT = 32


class Backoff:
    """Capped exponential back-off with up to ``jitter`` of each delay taken off at random."""

    def __init__(self, base_s: float, cap_s: float, jitter: float = 0.25,
                 rand: Callable[[], float] = random.random) -> None:
        self.base_s, self.cap_s, self.jitter, self.rand = base_s, cap_s, jitter, rand
        self.failures = 0

    def failed(self) -> float:
        """Count one failure; return the delay before the next attempt (never above the cap)."""
        self.failures += 1
        delay = min(self.cap_s, self.base_s * 2.0 ** min(self.failures - 1, MAX_EXPONENT))
        return delay * (1.0 - self.jitter * self.rand())

    def succeeded(self) -> int:
        """Reset; return how many failures the run had."""
        failures, self.failures = self.failures, 0
        return failures


class FailureRun:
    """Logs the first failure of a run, then nothing until it recovers, then one line with the
    count. Messages must already be redacted."""

    def __init__(self, log: logging.Logger, what: str, level: int = logging.WARNING) -> None:
        self.log, self.what, self.level = log, what, level
        self.count = 0
        self.last = ""

    def failed(self, reason: str, doing: str = "failed") -> None:
        self.count += 1
        self.last = reason
        if self.count == 1:
            self.log.log(self.level, "%s: %s (logged once until it recovers): %s", self.what, doing, reason)

    def recovered(self, doing: str = "working again") -> None:
        if self.count:
            self.log.info("%s: %s after %d failure(s)", self.what, doing, self.count)
        self.count = 0
