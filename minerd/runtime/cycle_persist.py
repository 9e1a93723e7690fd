"""What a control cycle leaves on disk, written by a listener so the cycle only decides.

- the loop integral and its error-slope fit, every INTEGRAL_EVERY cycles (a restart
  resumes the correction);
- the last grid contact, at most every CONTACT_PERSIST_S and off the loop;
- closed compliance records (minutes, settlement intervals); ones the disk refuses wait in
  memory, bounded, and go out with the next write that works.
A failed write is counted by storage health; control never waits for, nor fails on, a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Protocol

from minerd.clock import Clock
from minerd.control.error_slope import ErrorSlope
from minerd.errors import StorageError
from minerd.model import ComplianceRecord
from minerd.storage import Stores
from minerd.storage.compliance import ComplianceKind
from minerd.storage.state import JsonValue


class PersistedResult(Protocol):
    """What the persister reads of a runtime.cycle.CycleResult (no import: the cycle owns
    its persister)."""

    @property
    def cycle(self) -> int: ...
    @property
    def compliance(self) -> tuple[ComplianceRecord, ...]: ...
    @property
    def compliance_minutes(self) -> tuple[ComplianceRecord, ...]: ...
    @property
    def loop_integral_kw(self) -> float: ...
    @property
    def loop_error_fit(self) -> ErrorSlope: ...
    @property
    def grid_last_contact_s(self) -> float | None: ...


log = logging.getLogger("minerd.control")

STATE_INTEGRAL = "control.loop_integral_kw"
STATE_ERROR_FIT = "control.loop_error_fit"
STATE_GRID_CONTACT = "control.grid_last_contact_s"
INTEGRAL_EVERY = 10  # cycles between writes of the loop integral
# Grid contact is noted in memory per request and written at most this often, off the loop.
CONTACT_PERSIST_S = 5.0
# Compliance records the disk refused wait in memory, newest kept: a week of minutes.
MAX_HELD_COMPLIANCE = 10_080


class CyclePersister:
    """A cycle listener (runtime.cycle.CycleListener) that writes what the cycle decided."""

    def __init__(self, stores: Stores, clock: Clock) -> None:
        self._stores = stores
        self._clock = clock
        self._contact_saved_s: float | None = None  # the value last written
        self._contact_saved_mono_s = -math.inf
        self.contact_write: asyncio.Task[None] | None = None  # the write in flight, if any
        # (kind, interval_s, start_s) -> record, written when the disk takes writes again
        self._held: dict[tuple[str, float, float], ComplianceRecord] = {}

    def __call__(self, result: PersistedResult) -> None:
        self._store(list(result.compliance_minutes), "minute")
        self._store(list(result.compliance), "interval")
        if result.cycle % INTEGRAL_EVERY == 0:
            # A failed write is counted by storage health; the integral lives on in memory.
            with contextlib.suppress(StorageError):
                fit: dict[str, JsonValue] = dict(result.loop_error_fit.to_json())
                self._stores.state.set_many(
                    {STATE_INTEGRAL: result.loop_integral_kw, STATE_ERROR_FIT: fit}
                )
        self._persist_contact(result.grid_last_contact_s)

    # ------------------------------------------------------------ grid contact

    def _persist_contact(self, last: float | None) -> None:
        if last is None or last == self._contact_saved_s:
            return
        if self.contact_write is not None and not self.contact_write.done():
            return
        now_mono_s = self._clock.monotonic_s()
        if now_mono_s - self._contact_saved_mono_s < CONTACT_PERSIST_S:
            return
        self._contact_saved_mono_s = now_mono_s
        self.contact_write = asyncio.get_running_loop().create_task(
            self._write_contact(last), name="grid-contact-write"
        )

    async def _write_contact(self, contact_s: float) -> None:
        try:
            # A crash loses at most the last few seconds of contact: no fsync needed.
            await asyncio.to_thread(
                self._stores.state.set_many, {STATE_GRID_CONTACT: contact_s}, durable=False
            )
        except StorageError:
            return  # counted by storage health; the next contact tries again
        self._contact_saved_s = contact_s

    # ------------------------------------------------------------ compliance

    def _store(self, records: list[ComplianceRecord], kind: ComplianceKind) -> None:
        held = self._held
        if not records and not held:
            return
        if held:
            for r in records:
                held[(kind, r.interval_s, r.interval_start_s)] = r
            try:
                with self._stores.db.transaction("upsert compliance (held)"):
                    for k in ("minute", "interval"):
                        batch = [r for key, r in held.items() if key[0] == k]
                        if batch:
                            self._stores.compliance.upsert_many(batch, k)
            except StorageError:
                self._trim_held()
                return
            log.info("compliance records written again (%d held in memory)", len(held))
            held.clear()
            return
        try:
            self._stores.compliance.upsert_many(records, kind)
        except StorageError:
            for r in records:
                held[(kind, r.interval_s, r.interval_start_s)] = r

    def _trim_held(self) -> None:
        held = self._held
        while len(held) > MAX_HELD_COMPLIANCE:
            del held[next(iter(held))]  # the oldest goes first
