"""The circuit breaker: opens after N consecutive failures, one probe after the cool-down, closes on success."""

from microservices.gateway.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("job_processor", failure_threshold=3, cooldown_s=10.0, clock=clock)


def test_opens_after_the_threshold_of_consecutive_failures():
    clock = Clock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow() is True
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert b.allow() is False
    assert b.retry_after_s() == 10


def test_a_success_resets_the_count():
    b = breaker(Clock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    assert b.failures == 2


def test_one_probe_after_the_cool_down_and_only_one():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 9.9
    assert b.allow() is False
    assert b.retry_after_s() == 1
    clock.now += 0.1
    assert b.allow() is True
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() is False


def test_a_successful_probe_closes_and_a_failed_one_reopens():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow() is True
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert b.allow() is False
    clock.now += 10
    assert b.allow() is True
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.allow() is True
    assert b.failures == 0


def test_a_probe_that_never_reports_back_does_not_block_forever():
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.now += 10
    assert b.allow() is True
    clock.now += 10
    assert b.allow() is True
    assert b.state is BreakerState.HALF_OPEN
