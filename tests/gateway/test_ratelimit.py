"""The rate-limit script on a real Redis: atomic counts, window expiry, tiers, and failing open."""

import asyncio
import uuid

import pytest

from microservices.common.auth import Principal
from microservices.common.redis import CACHE_DB, GATEWAY_DB, make_redis
from microservices.common.settings import ServiceSettings
from microservices.gateway.ratelimit import RateLimiter


@pytest.fixture
async def redis(infra):
    client = make_redis(ServiceSettings(redis_url=infra.redis_url).redis_db_url(GATEWAY_DB))
    yield client
    await client.aclose()


def user(*roles: str, service: bool = False) -> Principal:
    return Principal(subject=uuid.uuid4().hex, username="u", roles=frozenset(roles), is_service=service)


def limiter(redis, **overrides) -> RateLimiter:
    options = {"window_s": 60, "default_limit": 3, "tiers": {"service_admin": 5, "admin": 10}, **overrides}
    return RateLimiter(redis=redis, **options)


async def test_counts_down_then_refuses_with_the_time_to_reset(redis):
    rl = limiter(redis)
    alice = user("researcher")
    decisions = [rl.check(principal=alice, client_address="10.0.0.1") for _ in range(4)]
    assert [(d.allowed, d.limit, d.remaining) for d in decisions] == [
        (True, 3, 2),
        (True, 3, 1),
        (True, 3, 0),
        (False, 3, 0),
    ]
    assert all(d.reset_s == 60 for d in decisions)
    refused = dict(decisions[-1].headers())
    assert refused == {
        b"x-ratelimit-limit": b"3",
        b"x-ratelimit-remaining": b"0",
        b"x-ratelimit-reset": b"60",
        b"retry-after": b"60",
    }
    assert b"retry-after" not in dict(decisions[0].headers())


async def test_counts_are_shared_through_redis_at_each_report(redis):
    one, two = limiter(redis, default_limit=10), limiter(redis, default_limit=10)
    bob = user()
    for _ in range(4):
        one.check(principal=bob, client_address="-")
    for _ in range(3):
        two.check(principal=bob, client_address="-")
    await one.report()
    await two.report()
    assert await redis.get(one.key_for(bob, "-")) == b"7"
    # The second reported last and knows all 7: its next request is the 8th.
    assert two.check(principal=bob, client_address="-").remaining == 2
    # The first knew only its own 4 until its next report; between reports each gateway decides on what it knows.
    assert one.check(principal=bob, client_address="-").remaining == 5
    await two.report()
    await one.report()
    assert await redis.get(one.key_for(bob, "-")) == b"9"
    assert [one.check(principal=bob, client_address="-").allowed for _ in range(2)] == [True, False]
    # Nothing counted since the last report of the second: its report adds nothing.
    await two.report()
    assert await redis.get(one.key_for(bob, "-")) == b"9"


async def test_a_gateway_learns_when_a_window_started_elsewhere_ends(redis):
    first, second = limiter(redis, window_s=4), limiter(redis, window_s=4)
    erin = user()
    first.check(principal=erin, client_address="-")
    await first.report()
    await asyncio.sleep(1.2)
    # The second gateway's first guess is a whole window; the shared counter says less than 3 s remain.
    assert second.check(principal=erin, client_address="-").reset_s == 4
    await second.report()
    later = second.check(principal=erin, client_address="-")
    assert (later.reset_s, later.remaining) == (3, 0)


async def test_the_window_expires_and_the_caller_recovers(redis):
    rl = limiter(redis, window_s=1, default_limit=1)
    carol = user()
    assert rl.check(principal=carol, client_address="-").allowed is True
    assert rl.check(principal=carol, client_address="-").allowed is False
    await rl.report()
    await asyncio.sleep(1.1)
    again = rl.check(principal=carol, client_address="-")
    assert (again.allowed, again.remaining) == (True, 0)
    # The ended window was forgotten and the shared counter expired with it: the report starts a new one.
    await rl.report()
    assert await redis.get(rl.key_for(carol, "-")) == b"1"


async def test_anonymous_callers_are_counted_per_address(redis):
    rl = limiter(redis, default_limit=1)
    address = f"10.{uuid.uuid4().int % 250}.0.1"
    assert rl.check(principal=None, client_address=address).allowed is True
    assert rl.check(principal=None, client_address=address).allowed is False
    assert rl.check(principal=None, client_address=address + "0").allowed is True


def test_tiers_by_role_take_the_highest_and_service_accounts_are_not_limited():
    rl = RateLimiter(redis=FakeScriptHost(), window_s=60, default_limit=3, tiers={"service_admin": 5, "admin": 10})
    assert rl.limit_for(None) == 3
    assert rl.limit_for(user("researcher")) == 3
    assert rl.limit_for(user("service_admin")) == 5
    assert rl.limit_for(user("service_admin", "admin")) == 10
    assert rl.limit_for(user(service=True)) is None
    assert rl.check(principal=user(service=True), client_address="-") is None


class FakeScriptHost:
    def register_script(self, script):
        return None


async def test_redis_down_limits_on_the_gateways_own_counts_and_backs_off(caplog):
    from microservices.common.localinfra import free_port

    down = make_redis(f"redis://127.0.0.1:{free_port()}/2", timeout_s=0.2)
    rl = limiter(down, default_limit=1)
    frank = user()
    assert rl.check(principal=frank, client_address="-").allowed is True
    await rl.report()
    assert "rate limits counted by this gateway alone: Redis unavailable" in caplog.text
    assert rl.check(principal=frank, client_address="-").allowed is False
    caplog.clear()
    # Within the back-off Redis is not asked again, so nothing more is logged.
    await rl.report()
    assert caplog.text == ""
    await down.aclose()


async def test_a_report_reads_when_the_callers_tokens_were_revoked(redis, infra):
    cache = make_redis(ServiceSettings(redis_url=infra.redis_url).redis_db_url(CACHE_DB))
    rl = limiter(redis)
    dave = Principal(subject=uuid.uuid4().hex, username="dave", claims={"iat": 1000})
    try:
        assert rl.check(principal=dave, client_address="-").revoked_before is None
        await cache.set(f"auth:revoked_before:{dave.subject}", 1001, ex=60)
        assert rl.check(principal=dave, client_address="-").revoked_before is None
        await rl.report()
        decision = rl.check(principal=dave, client_address="-")
    finally:
        await cache.aclose()
    assert decision.revoked_before == 1001
    assert decision.revokes(dave) is True
    assert decision.revokes(Principal(subject=dave.subject, username="dave", claims={"iat": 1001})) is False
    # The counter stayed in the gateway's database: the script's SELECT did not move the connection.
    assert decision.remaining == 0
    assert await redis.get(rl.key_for(dave, "-")) == b"2"


async def test_reports_run_in_the_background_and_a_last_one_on_close(redis):
    rl = limiter(redis, report_interval_s=0.05)
    grace = user()
    await rl.start()
    rl.check(principal=grace, client_address="-")
    await asyncio.sleep(0.3)
    assert await redis.get(rl.key_for(grace, "-")) == b"1"
    rl.check(principal=grace, client_address="-")
    await rl.close()
    assert await redis.get(rl.key_for(grace, "-")) == b"2"
