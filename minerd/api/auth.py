"""Bearer tokens with roles, stored only as SHA-256, and a brake on guessing.

A token is looked up by the SHA-256 of the presented secret, compared with
hmac.compare_digest against every configured digest (no early exit, so timing says
nothing about which digest came close). The token is checked first: a valid one is
always admitted. Only wrong tokens are braked, per client address (FailureThrottle).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from minerd.api.problems import ApiError
from minerd.settings.models import ApiToken


class Role(StrEnum):
    GRID = "grid"  # quotas, compliance, site read
    OPERATOR = "operator"  # everything readable, operator cap, maintenance, alert ack
    VIEWER = "viewer"  # read only


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name is the actor in the audit log."""

    name: str
    role: Role


def hash_token(secret: str) -> str:
    """The lowercase hex SHA-256 that the config stores for a token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenBook:
    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple(
            (t.sha256_value.lower().encode("ascii"), Principal(t.name, Role(t.role)))
            for t in tokens
            if t.sha256_value
        )

    def lookup(self, secret: str) -> Principal | None:
        digest = hash_token(secret).encode("ascii")
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(digest, stored) and found is None:
                found = principal
        return found


@dataclass(frozen=True)
class BadAttempt:
    """How to answer one wrong token: 401 after delay_s, or 429 at once when
    retry_after_s > 0."""

    delay_s: float = 0.0
    retry_after_s: float = 0.0


class FailureThrottle:
    """Slows wrong tokens per client address; never looks at right ones.

    The first free_failures wrong tokens within window_s are answered at once, the next
    ones after a delay doubling from base_delay_s up to max_delay_s, and beyond
    max_failures with 429 at once (so an attacker holds no connection open). A valid
    token from the same address is checked before any of this and always admitted: a
    guesser sharing the grid authority's address cannot lock it out. Bounded memory: at
    most max_clients addresses, max_failures + 1 times each.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        free_failures: int = 3,
        base_delay_s: float = 0.25,
        max_delay_s: float = 4.0,
        max_clients: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._max_clients = max_clients
        self._now = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.failures_total = 0  # every wrong token since start (a Prometheus counter)
        self.refused_total = 0  # of which answered 429

    def failed(self, client: str) -> BadAttempt:
        """Count a wrong token from client and say how to answer it."""
        now = self._now()
        self.failures_total += 1
        times = self._failures.get(client)
        if times is None:
            times = deque(maxlen=self.max_failures + 1)
            self._failures[client] = times
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        self._prune(times, now)
        times.append(now)
        n = len(times)
        if n > self.max_failures:
            self.refused_total += 1
            # Until enough of these leave the window for one more try to be below the cap.
            frees_at = times[n - self.max_failures] + self.window_s
            return BadAttempt(retry_after_s=max(1.0, frees_at - now))
        if n <= self.free_failures:
            return BadAttempt()
        delay_s = self.base_delay_s * 2.0 ** (n - self.free_failures - 1)
        return BadAttempt(delay_s=min(delay_s, self.max_delay_s))

    def recent(self) -> tuple[int, tuple[tuple[str, int], ...]]:
        """(wrong tokens within the window, capped per address at max_failures + 1;
        the addresses that sent them, most first, at most five)."""
        now = self._now()
        counts: list[tuple[str, int]] = []
        for client, times in self._failures.items():
            self._prune(times, now)
            if times:
                counts.append((client, len(times)))
        counts.sort(key=lambda c: (-c[1], c[0]))
        return sum(n for _, n in counts), tuple(counts[:5])

    def _prune(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="minerd"'})


class Authenticator:
    """Turns an Authorization header into a Principal with one of the allowed roles."""

    def __init__(self, book: TokenBook, throttle: FailureThrottle) -> None:
        self.book = book
        self.throttle = throttle

    async def check(
        self, client: str, authorization: str | None, roles: frozenset[Role]
    ) -> Principal:
        if not authorization:
            raise unauthorized("authentication required: send Authorization: Bearer <token>")
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        principal = self.book.lookup(secret) if scheme.lower() == "bearer" and secret else None
        if principal is None:
            await self._bad_attempt(client)
            if scheme.lower() != "bearer" or not secret:
                raise unauthorized("malformed Authorization header: expected Bearer <token>")
            raise unauthorized("invalid token")
        if principal.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise ApiError(
                403, f"token {principal.name!r} has role {principal.role.value}; needs {allowed}"
            )
        return principal

    async def _bad_attempt(self, client: str) -> None:
        verdict = self.throttle.failed(client)
        if verdict.retry_after_s > 0:
            raise ApiError(
                429,
                "too many wrong tokens from this address; retry later",
                headers={"Retry-After": str(max(1, math.ceil(verdict.retry_after_s)))},
            )
        if verdict.delay_s > 0:
            await asyncio.sleep(verdict.delay_s)
