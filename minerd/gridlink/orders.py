"""Quotas from a grid protocol, through the one write path (minerd.runtime.commands).

A protocol source keeps at most one set of its own quotas in force: a new IEC 104 setpoint
withdraws the previous one, an OpenADR event's quotas are replaced when the event changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from minerd.api.problems import QuotaConflict
from minerd.api.quota_orders import quota_command
from minerd.api.schemas import QuotaRequest
from minerd.api.times import iso
from minerd.errors import QuotaError, StorageError
from minerd.model import Quota, QuotaSource
from minerd.runtime.commands import QuotaOutcome, WithdrawQuota, execute_now
from minerd.runtime.service import SiteService

log = logging.getLogger(__name__)

FAR_FUTURE_S = 100 * 365 * 86400.0


@dataclass(frozen=True)
class Order:
    limit_kw: float
    start_s: float | None = None  # None: now
    end_s: float | None = None  # None: until withdrawn
    reference: str | None = None


@dataclass(frozen=True)
class Refused:
    reason: str


class GridOrders:
    """Submit and withdraw one protocol's quotas; actor names who sent them."""

    def __init__(self, service: SiteService, source: QuotaSource) -> None:
        self.service = service
        self.source = source

    def submit(self, order: Order, actor: str) -> QuotaOutcome | Refused:
        body: dict[str, object] = {"limit_kw": order.limit_kw}
        now_s = self.service.clock.now_s()
        if order.start_s is not None and order.start_s > now_s:
            body["start"] = iso(order.start_s)
        if order.end_s is not None:
            body["end"] = iso(order.end_s)
        if order.reference is not None:
            body["reference"] = order.reference
        try:
            req = QuotaRequest.model_validate(body)
            command = quota_command(req, actor=actor, source=self.source)
            return execute_now(self.service, command)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            return Refused(f"{field}: {str(first['msg']).removeprefix('Value error, ')}")
        except QuotaConflict as exc:
            return Refused(f"{exc.field}: {exc.message}")
        except QuotaError as exc:
            return Refused(f"{exc.field}: {exc.message}")
        except StorageError as exc:
            log.error("%s quota not accepted: %s", self.source.value, exc)
            return Refused(f"storage unavailable: {exc}")

    def in_force(self, match: Callable[[Quota], bool] = lambda q: True) -> list[Quota]:
        """This source's quotas in force now or later, not withdrawn, that match."""
        now_s = self.service.clock.now_s()
        quotas = self.service.stores.quotas.covering(now_s, now_s + FAR_FUTURE_S)
        return [
            q
            for q in quotas
            if q.source is self.source
            and (q.withdrawn_at_s is None or q.withdrawn_at_s > now_s)
            and match(q)
        ]

    def withdraw(self, quotas: list[Quota], actor: str) -> int:
        """Withdraw each (audited one by one); returns how many were withdrawn."""
        done = 0
        for q in quotas:
            try:
                execute_now(self.service, WithdrawQuota(q.quota_id, actor))
                done += 1
            except StorageError as exc:
                log.error("%s: quota %s not withdrawn: %s", self.source.value, q.quota_id, exc)
        return done
