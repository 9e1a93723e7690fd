"""The last act of a control loop that cannot go on: shed the site to its fail-safe limit.

Used when the control cycle itself has failed (a bug, a part it cannot do without) just
before the process exits for systemd to restart it. It trusts nothing but the last readings
and the rigs' models: every rig not known to be asleep counts at the more of its nominal
power and its reading (ARCHITECTURE.md, stale grid meter rule); a fresh grid meter reading
above what the model predicts corrects the budget by the difference (the meter has the
last word); rigs are put to sleep until that worst case fits under the limit. It talks to
the rigs directly, not through the executor (which may be what failed), and journals what
it sent, once sent, if the disk still takes writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from minerd.clock import Clock
from minerd.control.loop import LoopConfig, budget_for_import_kw, predicted_import_kw
from minerd.devices.rig import driver_fault
from minerd.errors import MinerdError
from minerd.model import FleetSnapshot, RigAction, RigCommand, RigModel, RigState
from minerd.runtime.devices import PollableRig
from minerd.runtime.executor import pool_lanes
from minerd.storage import CommandJournal
from minerd.storage.journal import HeldEntry

log = logging.getLogger("minerd.control")

REASON = "fail-safe before exit"


@dataclass(frozen=True)
class ShedReport:
    budget_w: float  # worst-case rig power allowed under the fail-safe limit
    kept_w: float  # worst-case power of the rigs left awake
    sent: int
    ok: int
    failed: int


def failsafe_orders(
    snap: FleetSnapshot,
    models: Mapping[str, RigModel],
    failsafe_limit_kw: float,
    loop: LoopConfig,
) -> tuple[list[RigCommand], float, float]:
    """(sleep commands, budget_w, worst-case watts kept): rigs that fit under the fail-safe
    limit at their worst case stay as they are, hashing ones first; every other rig is
    told to sleep, whatever its last reading said."""
    correction_kw = 0.0
    if snap.grid_fresh and snap.grid_meters:
        model_kw = predicted_import_kw(snap.rig_power_w, loop)
        correction_kw = max(0.0, snap.grid_import_w / 1000.0 - model_kw)
    budget_w = budget_for_import_kw(failsafe_limit_kw - loop.margin_kw, correction_kw, loop)
    # Every rig of ours draws at least its sleep power; a rig that reads asleep may have
    # been told to wake a moment ago, so it is told to sleep too unless it fits awake.
    kept_w = 0.0
    candidates: list[tuple[bool, str, float, float]] = []
    for st in snap.rigs:
        model = models[st.rig_id]
        worst_w = max(st.reading.power_w, model.nominal_power_w)
        if st.maintenance:
            kept_w += worst_w  # pinned by an operator: not ours to command
            continue
        kept_w += model.sleep_power_w
        hashing = st.fresh and st.reading.state is RigState.HASHING
        candidates.append((not hashing, st.rig_id, worst_w, model.sleep_power_w))
    orders: list[RigCommand] = []
    for _, rig_id, worst_w, sleep_w in sorted(candidates):
        if kept_w + worst_w - sleep_w <= budget_w:
            kept_w += worst_w - sleep_w
        else:
            orders.append(RigCommand(rig_id, RigAction.SLEEP, reason=REASON))
    return orders, budget_w, kept_w


async def shed_to_failsafe(
    snap: FleetSnapshot,
    models: Mapping[str, RigModel],
    rigs: Mapping[str, PollableRig],
    *,
    failsafe_limit_kw: float,
    loop: LoopConfig,
    clock: Clock,
    journal: CommandJournal | None = None,
    rig_timeout_s: float = 5.0,
    rig_limits_s: Mapping[str, float] | None = None,
    concurrency: int = 64,
) -> ShedReport:
    """Send the fail-safe sleep commands, all at once (bounded), each under its rig's own
    limit (rig_limits_s, as the executor has them: devices.rig.command_limit_s; else
    rig_timeout_s). Slow rigs (a limit above the shortest) hold at most their share of the
    slots (executor.pool_lanes), so hung stock rigs never hold up the LuxOS rigs' sleep.

    The journal is written after the commands, not before: the database is synchronous and
    may be slow or locked (the disk is a usual reason to get here), and nothing may hold
    the shed back. The restart's first reads see what the rigs did either way."""
    orders, budget_w, kept_w = failsafe_orders(snap, models, failsafe_limit_kw, loop)
    sent_at_s = clock.now_s()
    limits_s = {c.rig_id: (rig_limits_s or {}).get(c.rig_id, rig_timeout_s) for c in orders}
    fast_limit_s = min(limits_s.values(), default=rig_timeout_s)
    workers, slow_workers = pool_lanes(max(1, concurrency))
    gate, slow_gate = asyncio.Semaphore(workers), asyncio.Semaphore(slow_workers)
    errors: dict[int, str] = {}

    async def send(i: int, cmd: RigCommand) -> bool:
        limit_s = limits_s[cmd.rig_id]
        async with contextlib.AsyncExitStack() as slots:
            if limit_s > fast_limit_s:
                await slots.enter_async_context(slow_gate)
            await slots.enter_async_context(gate)
            try:
                async with clock.timeout(limit_s):
                    await rigs[cmd.rig_id].apply(cmd)
            except TimeoutError:
                errors[i] = f"{cmd.rig_id}: no answer to sleep within {limit_s:g}s"
            except MinerdError as exc:
                errors[i] = str(exc)
            except Exception as exc:  # a driver bug on one rig must not stop the others' shed
                errors[i] = str(driver_fault(cmd.rig_id, "", exc))
                log.debug("fail-safe sleep to %s: driver error", cmd.rig_id, exc_info=exc)
            if i in errors:
                log.warning("fail-safe sleep to %s failed: %s", cmd.rig_id, errors[i])
                return False
        return True

    done = await asyncio.gather(*(send(i, c) for i, c in enumerate(orders)))
    if journal is not None and orders:
        at_s = clock.now_s()
        entries = [
            HeldEntry(cmd, sent_at_s, at_s, i not in errors, errors.get(i))
            for i, cmd in enumerate(orders)
        ]
        with contextlib.suppress(MinerdError):
            journal.record(entries)
    ok = sum(done)
    return ShedReport(budget_w, kept_w, len(orders), ok, len(orders) - ok)
