"""The split when a live shard is late: its aggregate has not come this cycle, but it is not
yet silent (stale_cycles). It may be dead, and a dead shard's rigs keep what they were last
told: a cut of its share would not be carried out.

So when the split would give a late shard less than it may still be running to (the budget
last sent to it, or its last plan if that is higher: a cut sent as it died never reached
it), the shard is held: it is counted at that figure or at its last reported draw, whichever
is higher, and the shards heard this cycle take the whole cut. It is sent its share of the
split (what it gets if it is alive and hears), never less than its last budget. When its
share is not falling, the split is the plain one: a late message sheds no one in steady
state.

Shedding stays first: no other shard's share is ever above the plain split's, and the held
shards' counts plus the others' shares never exceed the budget (if the held counts alone do,
they are cut pro rata and every other shard gets nothing). Pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minerd.cluster.curve import ShardCurve
from minerd.cluster.split import ShardShare, Split, split_budget

# A fall smaller than this is float noise, not a cut.
_CUT_TOLERANCE_W = 1.0


@dataclass(frozen=True)
class LateShard:
    given_w: float  # the budget last sent to it (its last plan, if none was)
    planned_w: float  # what its last plan gave its rigs
    drawing_w: float  # what its last aggregate said its rigs draw (the higher count)
    hashrate_ths: float  # measured, from its last aggregate

    @property
    def told_w(self) -> float:
        """What its rigs may still be running to."""
        return max(self.given_w, self.planned_w)

    @property
    def hold_w(self) -> float:
        """What it is counted at while held."""
        return max(self.told_w, self.drawing_w)


@dataclass(frozen=True)
class LateSplit:
    split: Split  # a held shard's share: what it is sent
    held: tuple[str, ...]  # late shards held (sorted)
    held_w: float  # what the held shards are counted at, taken off the others' budget


def split_with_late(
    budget_w: float,
    curves: Mapping[str, ShardCurve],
    late: Mapping[str, LateShard],
    max_wakes: int | None = None,
    plain: Split | None = None,
) -> LateSplit:
    """split_budget over curves, with every late shard whose share would fall held (late:
    the shards of curves not heard this cycle). plain: the split of budget_w to hold against
    and send when nothing is held (the caller's steady split), else split_budget's."""
    if not budget_w >= 0.0:  # NaN or negative: the minimum, as split_budget
        budget_w = 0.0
    if plain is None:
        plain = split_budget(budget_w, curves, max_wakes)
    split = plain
    counted: dict[str, float] = {}  # held shard -> what it is counted at
    sent: dict[str, float] = {}  # held shard -> what it is sent
    while True:  # holding one may lower another late shard's share: at most len(late) rounds
        more = [
            s
            for s, lt in sorted(late.items())
            if s in split.shares
            and s not in counted
            and split.shares[s].budget_w < lt.told_w - _CUT_TOLERANCE_W
        ]
        if not more:
            break
        for s in more:
            counted[s] = late[s].hold_w
            sent[s] = max(split.shares[s].budget_w, late[s].given_w)  # <= hold_w
        rest = {s: c for s, c in curves.items() if s not in counted}
        split = split_budget(max(0.0, budget_w - sum(counted.values())), rest, max_wakes)
    if not counted:
        return LateSplit(plain, (), 0.0)
    # Held counts beyond the whole budget: cut pro rata (the budget is still the loop's).
    total_w = sum(counted.values())
    scale = min(1.0, budget_w / total_w) if total_w > 0.0 else 1.0
    wakes = None if max_wakes is None else 0  # held, never raised
    shares = {
        # Never above the plain split: the heard shards' cut is never shrunk.
        s: ShardShare(min(sh.budget_w, plain.shares[s].budget_w), sh.hashrate_ths, sh.wakes)
        for s, sh in split.shares.items()
    }
    for s, w in sent.items():
        shares[s] = ShardShare(w * scale, late[s].hashrate_ths, wakes)
    ths = sum(sh.hashrate_ths for sh in shares.values())
    out = Split(budget_w, dict(sorted(shares.items())), ths, split.shortfall_w)
    return LateSplit(out, tuple(sorted(counted)), total_w * scale)
