"""A shard's budget gate: which budget it plans to this cycle. Pure; the shard node feeds it.

- Fencing: a budget with an older lease revision than the newest the shard has accepted is
  ignored (a deposed controller cannot undo its successor), as is a replay of the same
  revision (seq not rising).
- Hold: the last budget holds while budgets are missed, for fewer than `hold_cycles` cycles.
- Fail-safe: from the `hold_cycles`-th cycle without a budget (and before the first one),
  the shard plans to its fail-safe share, never above the budget it last held: losing the
  controller never raises a shard's power. The share applies at once; shedding is unrated.
- Store epochs: revisions count only within one lease store; a deleted or wiped store starts
  them at 1 again, and revision fencing alone would refuse the new term's budgets forever.
  So a budget names its store's epoch, and the gate keeps the epoch of its newest revision.
  A budget of another epoch (both known) is refused while the shard plans to a budget (fresh
  or held) and taken once the shard is on its fail-safe share: the old term is over by then,
  so two controllers' budgets are never obeyed one straight after the other; the fail-safe
  share lies between. Its revision then becomes the newest (the count starts anew), and the
  old epoch is another epoch in turn. An epoch of "" (an older controller, or one that could
  not read it) is unknown: revisions alone decide, as before epochs. Within one epoch,
  fencing is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minerd.cluster.messages import Budget

EPOCH_UNKNOWN = ""  # a budget from an older controller, or one that could not read its epoch


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
    # The controller's economics filter (Budget.max_j_per_th), kept while a budget is held;
    # None on the fail-safe share (no price heard: every point, as one process without one).
    max_j_per_th: float | None = None


@dataclass(frozen=True)
class EpochSwitch:
    """A budget of another store epoch taken on the fail-safe share: the new term's first."""

    old_epoch: str
    old_revision: int
    new_epoch: str
    new_revision: int
    controller_id: str


class BudgetGate:
    def __init__(self, shard_id: str, failsafe_w: float, hold_cycles: int = 3) -> None:
        self.shard_id = shard_id
        self.failsafe_w = failsafe_w  # replaced by every accepted budget's share
        self.hold_cycles = max(1, hold_cycles)
        self.newest_revision = 0
        self.newest_epoch = EPOCH_UNKNOWN  # the store epoch of newest_revision
        self.ignored = 0  # budgets refused (fenced, replayed, or for another shard)
        self.other_epoch_refused = 0  # of those: another store epoch, not yet on fail-safe
        self.epoch_switches = 0  # budgets of another store epoch taken on the fail-safe share
        self.last_switch: EpochSwitch | None = None
        self._last: Budget | None = None
        self._pending: Budget | None = None
        self._missed = 0

    @property
    def has_pending(self) -> bool:
        """A budget arrived since the last cycle."""
        return self._pending is not None

    @property
    def in_failsafe(self) -> bool:
        """On the fail-safe share: no budget pending, and none accepted for hold_cycles
        cycles (or none ever)."""
        return self._pending is None and (self._last is None or self._missed >= self.hold_cycles)

    def other_epoch(self, b: Budget) -> bool:
        """The budget's revision counts in another store than the newest one's (both known)."""
        return (
            b.store_epoch != EPOCH_UNKNOWN
            and self.newest_epoch != EPOCH_UNKNOWN
            and b.store_epoch != self.newest_epoch
        )

    def offer(self, b: Budget) -> bool:
        """Take a budget off the wire; False (and counted) when it is fenced off."""
        if b.shard_id != self.shard_id:
            self.ignored += 1
            return False
        if self.other_epoch(b):
            if not self.in_failsafe:  # the current term may still be commanding
                self.ignored += 1
                self.other_epoch_refused += 1
                return False
            self.epoch_switches += 1
            self.last_switch = EpochSwitch(
                self.newest_epoch,
                self.newest_revision,
                b.store_epoch,
                b.lease_revision,
                b.controller_id,
            )
            return self._take(b)
        if b.lease_revision < self.newest_revision:
            self.ignored += 1
            return False
        newest = self._pending or self._last
        if (
            newest is not None
            and b.lease_revision == newest.lease_revision
            and b.controller_id == newest.controller_id
            and b.seq <= newest.seq
        ):
            self.ignored += 1
            return False
        return self._take(b)

    def _take(self, b: Budget) -> bool:
        self.newest_revision = b.lease_revision  # another epoch's revision starts anew
        self.newest_epoch = b.store_epoch
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
                b.max_j_per_th,
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
                max_j_per_th=last.max_j_per_th,
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
