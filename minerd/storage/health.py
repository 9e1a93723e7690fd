"""How the database's writes fare: counts per operation, and which operations fail now.

Every write transaction of a Database reports here, so a full or read-only disk shows up
in one place (the StorageFailing alert, `minerd_storage_ok`, `minerd_storage_errors_total`)
whichever part of the daemon hit it. The parts that must go on without the disk degrade
on their own; this only says that, and logs the change once (WARNING when an operation
starts failing, INFO when it works again), never once per failed write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("minerd.storage")

# An operation that failed and was not tried again (a quota refused, then none sent) stops
# counting as failing once another write worked this long after its last failure, or
# after FAILING_EXPIRES_S without a new failure at all. Tried again, it says so at once.
RECHECK_S = 30.0
FAILING_EXPIRES_S = 300.0
OPEN_OP = "open"  # the write probe at open: any write that works later answers it


@dataclass(frozen=True)
class StorageProblem:
    op: str
    error: str
    since_s: float  # monotonic


def op_label(what: str) -> str:
    """A bounded metric label from a transaction's description ("set state foo" -> "set
    state"): descriptions are code constants plus at most one key."""
    return " ".join(what.split()[:2]) or "write"


class StorageHealth:
    """Shared by every store of one Database; safe to call from any thread."""

    def __init__(self, monotonic_s: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._mono = monotonic_s
        self._failing: dict[str, StorageProblem] = {}
        self._last_failure_s: dict[str, float] = {}
        self.errors_by_op: dict[str, int] = {}
        self.writes_ok = 0

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> tuple[StorageProblem, ...]:
        """Operations whose last attempt failed, oldest first."""
        with self._lock:
            self._expire()
            return tuple(sorted(self._failing.values(), key=lambda p: p.since_s))

    def summary(self) -> str:
        """One line for an alert or a log: which operations fail and the first error."""
        problems = self.problems()
        if not problems:
            return ""
        ops = ", ".join(p.op for p in problems)
        return f"{ops} failing: {problems[0].error}"

    def error_counts(self) -> dict[str, int]:
        """Failed writes so far, by operation."""
        with self._lock:
            return dict(self.errors_by_op)

    def failed(self, op: str, error: BaseException | str) -> None:
        now = self._mono()
        text = str(error)
        with self._lock:
            self.errors_by_op[op] = self.errors_by_op.get(op, 0) + 1
            self._last_failure_s[op] = now
            if op in self._failing:
                log.debug("storage %s still failing: %s", op, text)
                return
            self._failing[op] = StorageProblem(op, text, now)
        log.warning("storage: %s failed, the daemon goes on without it: %s", op, text)

    def succeeded(self, op: str) -> None:
        with self._lock:
            self.writes_ok += 1
            if not self._failing:
                return
            now = self._mono()
            back = [
                self._failing.pop(o)
                for o in list(self._failing)
                if o in (op, OPEN_OP) or now - self._last_failure_s.get(o, now) >= RECHECK_S
            ]
        for problem in back:
            log.info(
                "storage: %s works again (failed for %.0f s)", problem.op, now - problem.since_s
            )

    def _expire(self) -> None:
        now = self._mono()
        for op in [
            op
            for op in self._failing
            if now - self._last_failure_s.get(op, now) > FAILING_EXPIRES_S
        ]:
            del self._failing[op]
