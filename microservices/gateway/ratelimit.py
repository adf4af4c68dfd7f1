"""Rate limits per caller in Redis (db 2), counted atomically by one Lua script; Redis away means fail open.

The same script reads the caller's revocation time, so that a proxied request asks Redis once, not twice.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microservices.common.auth import REVOKED_BEFORE_KEY, Principal
from microservices.common.redis import CACHE_DB

logger = logging.getLogger(__name__)

SCRIPT = (Path(__file__).parent / "ratelimit.lua").read_text()
KEY_PREFIX = "ratelimit:"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request: allowed or not, and the values of the X-RateLimit-* headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    # When the user service last revoked the caller's tokens (epoch seconds), read in the same round trip.
    revoked_before: int | None = None

    def revokes(self, principal: Principal) -> bool:
        """True when the caller's token was issued before its subject's tokens were revoked."""
        if self.revoked_before is None or principal.is_service:
            return False
        return int(principal.claims.get("iat", 0)) < self.revoked_before

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The X-RateLimit-* headers (and Retry-After when refused), as ASGI header pairs."""
        pairs = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset_s).encode()),
        ]
        if not self.allowed:
            pairs.append((b"retry-after", str(max(1, self.reset_s)).encode()))
        return pairs


class RateLimiter:
    """Counts requests per caller in fixed windows; `check` is one round trip to Redis."""

    def __init__(
        self,
        *,
        redis: Any,
        window_s: int,
        default_limit: int,
        tiers: dict[str, int],
        skip_after_failure_s: float = 5.0,
    ) -> None:
        self.redis = redis
        self.window_s = window_s
        self.default_limit = default_limit
        self.tiers = dict(tiers)
        self._script = redis.register_script(SCRIPT)
        self._skip_after_failure_s = skip_after_failure_s
        self._skip_until = 0.0

    def limit_for(self, principal: Principal | None) -> int | None:
        """Requests allowed per window for this caller; None for the platform's own service accounts."""
        if principal is None:
            return self.default_limit
        if principal.is_service:
            return None
        return max([self.default_limit, *(self.tiers[r] for r in principal.roles if r in self.tiers)])

    def key_for(self, principal: Principal | None, client_address: str) -> str:
        """The counter of a user, or of a client address for anonymous calls, in windows of this length."""
        # The window is part of the name, so that gateways configured differently never share a counter.
        if principal is None:
            return f"{KEY_PREFIX}{self.window_s}:ip:{client_address}"
        return f"{KEY_PREFIX}{self.window_s}:user:{principal.subject}"

    async def check(self, *, principal: Principal | None, client_address: str) -> Decision | None:
        """Count this request; None when the caller is not limited or Redis cannot be asked (fail open)."""
        limit = self.limit_for(principal)
        if limit is None:
            return None
        now = time.monotonic()
        # After a failure, Redis is left alone for a moment so that every request does not wait on it.
        if now < self._skip_until:
            return None
        keys = [self.key_for(principal, client_address)]
        if principal is not None:
            keys.append(REVOKED_BEFORE_KEY.format(subject=principal.subject))
        try:
            count, ttl_ms, revoked_before = await self._script(keys=keys, args=[self.window_s * 1000, CACHE_DB])
        except Exception as exc:
            self._skip_until = now + self._skip_after_failure_s
            logger.warning("rate limiting skipped (fail open): Redis unavailable: %s", exc)
            return None
        reset_s = math.ceil(int(ttl_ms) / 1000)
        count = int(count)
        return Decision(
            allowed=count <= limit,
            limit=limit,
            remaining=max(0, limit - count),
            reset_s=reset_s,
            revoked_before=int(revoked_before) if revoked_before is not None else None,
        )
