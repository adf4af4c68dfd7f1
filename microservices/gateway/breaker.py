"""A circuit breaker per upstream: stop calling a service that keeps failing, probe it again after a cool-down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

logger = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `cooldown_s` one probe is let through."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0

    def allow(self) -> bool:
        """True when a call may go to the upstream now (closed, or the one probe after the cool-down)."""
        if self.state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self.state is BreakerState.OPEN and now - self._opened_at >= self.cooldown_s:
            # Only this caller probes; the others keep being refused until the probe's outcome is known.
            self.state = BreakerState.HALF_OPEN
            self._probe_at = now
            return True
        if self.state is BreakerState.HALF_OPEN and now - self._probe_at >= self.cooldown_s:
            # The probe never reported back (its caller went away): let another one through.
            self._probe_at = now
            return True
        return False

    def retry_after_s(self) -> int:
        """Seconds until a probe will be let through."""
        return max(1, round(self.cooldown_s - (self._clock() - self._opened_at)))

    def record_success(self) -> None:
        """The upstream answered: close the circuit."""
        if self.state is not BreakerState.CLOSED:
            logger.info("circuit to %s closed", self.name)
        self.state = BreakerState.CLOSED
        self.failures = 0

    def record_failure(self) -> None:
        """The upstream failed: count it, and open the circuit at the threshold or when a probe failed."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                logger.warning("circuit to %s opened after %d consecutive failures", self.name, self.failures)
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()
