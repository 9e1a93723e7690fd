"""A shard's budget gate: which budget it plans to this cycle. Pure; the shard node feeds it.

- Fencing: a budget with an older lease revision than the newest the shard has accepted is
  ignored (a deposed controller cannot undo its successor), as is a replay of the same
  revision (seq not rising).
- Hold: the last budget holds while budgets are missed, for fewer than `hold_cycles` cycles.
- Fail-safe: from the `hold_cycles`-th cycle without a budget (and before the first one),
  the shard plans to its fail-safe share, never above the budget it last held: losing the
  controller never raises a shard's power. The share applies at once; shedding is unrated.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minerd.cluster.messages import Budget


class BudgetSource(StrEnum):
    BUDGET = "budget"  # a budget arrived since the last cycle
    HELD = "held"  # the last budget, held through a few missed cycles
    FAILSAFE = "failsafe"  # no budget for hold_cycles cycles (or none yet)


@dataclass(frozen=True)
class GateDecision:
    budget_w: float
    max_wakes: int | None
    source: BudgetSource
    lease_revision: int  # of the budget planned to (0: none)
    missed_cycles: int
    controller_id: str = ""  # who sent the budget planned to ("": none)
    # The site over by the meter: this shard's part (Budget.overload_w). Only with a budget
    # fresh this cycle: a held one is a guess about the past.
    overload_w: float = 0.0


class BudgetGate:
    def __init__(self, shard_id: str, failsafe_w: float, hold_cycles: int = 3) -> None:
        self.shard_id = shard_id
        self.failsafe_w = failsafe_w  # replaced by every accepted budget's share
        self.hold_cycles = max(1, hold_cycles)
        self.newest_revision = 0
        self.ignored = 0  # budgets refused (fenced, replayed, or for another shard)
        self._last: Budget | None = None
        self._pending: Budget | None = None
        self._missed = 0

    @property
    def has_pending(self) -> bool:
        """A budget arrived since the last cycle."""
        return self._pending is not None

    def offer(self, b: Budget) -> bool:
        """Take a budget off the wire; False (and counted) when it is fenced off."""
        newest = self._pending or self._last
        if b.shard_id != self.shard_id or b.lease_revision < self.newest_revision:
            self.ignored += 1
            return False
        if (
            newest is not None
            and b.lease_revision == newest.lease_revision
            and b.controller_id == newest.controller_id
            and b.seq <= newest.seq
        ):
            self.ignored += 1
            return False
        self.newest_revision = b.lease_revision
        self._pending = b
        return True

    def next_cycle(self) -> GateDecision:
        """The budget for this cycle; call once per control cycle."""
        if self._pending is not None:
            self._last, self._pending = self._pending, None
            self._missed = 0
            self.failsafe_w = self._last.failsafe_w
            b = self._last
            return GateDecision(
                b.budget_w,
                b.max_wakes,
                BudgetSource.BUDGET,
                b.lease_revision,
                0,
                b.controller_id,
                b.overload_w,
            )
        self._missed += 1
        last = self._last
        if last is not None and self._missed < self.hold_cycles:
            return GateDecision(
                last.budget_w,
                0,
                BudgetSource.HELD,
                last.lease_revision,
                self._missed,
                last.controller_id,
            )
        if last is None:
            return GateDecision(self.failsafe_w, 0, BudgetSource.FAILSAFE, 0, self._missed)
        return GateDecision(
            min(self.failsafe_w, last.budget_w),
            0,
            BudgetSource.FAILSAFE,
            last.lease_revision,
            self._missed,
            last.controller_id,
        )
