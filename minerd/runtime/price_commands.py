"""Energy prices set from outside (POST /api/v1/prices), through the one command layer:
stored with its audit entry in one transaction, a repeat changes nothing, then the running
economics is told. Kept apart from runtime.commands so that module stays about the grid."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from minerd.runtime.commands import Applied, iso
from minerd.runtime.economics_status import (
    STATE_PRICES,
    PriceSlot,
    merge_slots,
    slots_from_json,
    slots_to_json,
)
from minerd.runtime.service import SiteService
from minerd.storage import Stores


@dataclass(frozen=True)
class PricesSet:
    slots: tuple[PriceSlot, ...]  # every slot in force or to come, after the merge
    added: int
    at_s: float


@dataclass(frozen=True)
class SetPrices:
    """Add price slots (later ones win where they overlap); the same slots again change
    nothing. `use` hands the stored slots to the running economics."""

    slots: tuple[PriceSlot, ...]
    actor: str
    use: Callable[[Sequence[PriceSlot]], None]
    what: ClassVar[str] = "energy prices"
    kept: ClassVar[str] = "the prices in force stay"

    def apply(self, stores: Stores, now_s: float) -> Applied[PricesSet]:
        before = merge_slots(slots_from_json(stores.state.get(STATE_PRICES, [])), (), now_s)
        merged = merge_slots(before, self.slots, now_s)
        if merged == before:  # a repeat (or only slots already over): nothing to store
            return Applied(PricesSet(before, 0, now_s), changed=False)
        stores.state.set(STATE_PRICES, slots_to_json(merged))
        detail = {
            "slots": len(self.slots),
            "from": iso(min(s.start_s for s in self.slots)) if self.slots else None,
            "to": iso(max(s.end_s for s in self.slots)) if self.slots else None,
        }
        stores.audit.record(now_s, self.actor, "prices.set", "", json.dumps(detail))
        return Applied(PricesSet(merged, len(self.slots), now_s), changed=True)

    def notify(self, service: SiteService, value: PricesSet) -> None:
        self.use(value.slots)
