"""Bearer tokens with roles, stored only as SHA-256, and a brake on guessing.

A token is looked up by the SHA-256 of the presented secret, compared with
hmac.compare_digest against every configured digest (no early exit, so timing says
nothing about which digest came close). A client address that presents wrong tokens
too often is refused with 429 and Retry-After for a while, whatever it presents next.
"""

from __future__ import annotations

import hashlib
import hmac
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


class FailureThrottle:
    """Per client address: after max_failures wrong tokens within window_s, refuse that
    address for lockout_s. Bounded: at most max_clients addresses are remembered."""

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        max_clients: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._max_clients = max_clients
        self._now = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}

    def retry_after_s(self, client: str) -> float:
        """Seconds this client must still wait; 0 when it may try."""
        until = self._locked_until.get(client)
        if until is None:
            return 0.0
        left = until - self._now()
        if left <= 0:
            del self._locked_until[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        now = self._now()
        times = self._failures.get(client)
        if times is None:
            times = deque()
            self._failures[client] = times
            while len(self._failures) > self._max_clients:
                old, _ = self._failures.popitem(last=False)
                self._locked_until.pop(old, None)
        else:
            self._failures.move_to_end(client)
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.max_failures:
            self._locked_until[client] = now + self.lockout_s
            times.clear()


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="minerd"'})


class Authenticator:
    """Turns an Authorization header into a Principal with one of the allowed roles."""

    def __init__(self, book: TokenBook, throttle: FailureThrottle) -> None:
        self.book = book
        self.throttle = throttle

    def check(self, client: str, authorization: str | None, roles: frozenset[Role]) -> Principal:
        wait_s = self.throttle.retry_after_s(client)
        if wait_s > 0:
            raise ApiError(
                429,
                "too many failed authentication attempts from this address; retry later",
                headers={"Retry-After": str(max(1, int(wait_s + 0.999)))},
            )
        if not authorization:
            raise unauthorized("authentication required: send Authorization: Bearer <token>")
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise unauthorized("malformed Authorization header: expected Bearer <token>")
        principal = self.book.lookup(secret)
        if principal is None:
            self.throttle.failed(client)
            raise unauthorized("invalid token")
        if principal.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise ApiError(
                403, f"token {principal.name!r} has role {principal.role.value}; needs {allowed}"
            )
        return principal
