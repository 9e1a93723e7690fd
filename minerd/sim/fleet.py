"""A slice of the site's rigs with their physics and listeners: what one process owns."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np

from minerd.clock import Clock
from minerd.errors import ProfileError
from minerd.model import RigProtocol
from minerd.sim.catalog import rig_model
from minerd.sim.family_servers import FAMILY_LISTENERS, FamilyListeners
from minerd.sim.faults import UnknownDevice, UnknownFault
from minerd.sim.physics import RampBank
from minerd.sim.rig import RIG_FAULTS, RigSim
from minerd.sim.rigserver import RigListeners
from minerd.sim.spec import TCP_PROTOCOLS, RigPlan


@dataclass(frozen=True)
class Aggregate:
    """Site sums of one slice at one instant, per container index."""

    taken_at_s: float
    power_w: dict[int, float]
    nominal_w: float
    rigs: int
    ramping: bool = False  # some rig is still moving to its setpoint


class RigFleet:
    def __init__(self, plans: list[RigPlan], clock: Clock, ambient_c: float = 25.0) -> None:
        self.clock = clock
        now_s = clock.now_s()
        self.plans = plans
        models = [rig_model(p.model) for p in plans]
        self.rigs: dict[str, RigSim] = {}
        self.bank = RampBank([0.0] * len(plans), now_s)
        self.listeners = RigListeners(clock)
        # Extra servers (web, API v3, gRPC) of the families present, one set per family.
        self.family_listeners: dict[RigProtocol, FamilyListeners] = {
            fam: FAMILY_LISTENERS[fam](clock)
            for fam in {p.family for p in plans}
            if fam in FAMILY_LISTENERS
        }
        for slot, (plan, model) in enumerate(zip(plans, models, strict=True)):
            if plan.profile is not None and model.profile(plan.profile) is None:
                known = ", ".join(p.name for p in model.profiles) or "none"
                raise ProfileError(
                    model.name, [f"{plan.rig_id}: no profile {plan.profile!r} (known: {known})"]
                )
            rig = RigSim(plan, model, self.bank, slot, now_s)
            rig.ambient_c = ambient_c
            self.rigs[plan.rig_id] = rig
            # start in steady state at the starting setpoint
            target = rig.effective_target_w()
            self.bank.p0[slot] = target
            self.bank.target[slot] = target
        self._containers = np.asarray([p.container for p in plans], dtype=np.int64)
        self._present = sorted({p.container for p in plans})
        self._nominal_w = float(sum(m.nominal_power_w for m in models))

    async def start(self) -> None:
        for rig in self.rigs.values():
            if rig.plan.protocol in TCP_PROTOCOLS:
                await self.listeners.open(rig)
            extra = self.family_listeners.get(rig.plan.family)
            if extra is not None:
                await extra.open(rig)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.listeners.close_all()
                for extra in self.family_listeners.values():
                    await extra.close_all()

    def family_port_of(self, rig_id: str) -> int | None:
        """The bound port of a rig's extra family server (web, API v3, gRPC), if it has one."""
        extra = self.family_listeners.get(self.rig(rig_id).plan.family)
        return extra.port_of(rig_id) if extra is not None else None

    def port_of(self, rig: RigSim) -> int:
        if rig.plan.protocol in TCP_PROTOCOLS and self.listeners.is_open(rig.rig_id):
            return self.listeners.port_of(rig.rig_id)
        return rig.plan.port

    # ------------------------------------------------------------ faults

    def rig(self, rig_id: str) -> RigSim:
        rig = self.rigs.get(rig_id)
        if rig is None:
            raise UnknownDevice(f"no rig {rig_id!r} in this simulated site")
        return rig

    async def inject(self, rig_id: str, fault: str) -> None:
        if fault not in RIG_FAULTS:
            raise UnknownFault(f"unknown rig fault {fault!r}; known: {sorted(RIG_FAULTS)}")
        rig = self.rig(rig_id)
        rig.set_fault(fault, True, self.clock.now_s())
        if fault == "offline":
            self.listeners.close(rig_id)
            extra = self.family_listeners.get(rig.plan.family)
            if extra is not None:
                extra.close(rig_id)

    async def clear(self, rig_id: str | None = None) -> None:
        targets = [self.rig(rig_id)] if rig_id is not None else list(self.rigs.values())
        now_s = self.clock.now_s()
        for rig in targets:
            if not rig.faults:
                continue
            was_offline = "offline" in rig.faults
            rig.faults.clear()
            rig.retarget(now_s)
            if was_offline and rig.plan.protocol in TCP_PROTOCOLS:
                await self.listeners.open(rig)
            extra = self.family_listeners.get(rig.plan.family)
            if was_offline and extra is not None:
                await extra.open(rig)

    # ------------------------------------------------------------ truth

    def aggregate(self) -> Aggregate:
        """Rig power per container now: one vector expression over the slice."""
        now_s = self.clock.now_s()
        power = self.bank.power_all_w(now_s)
        sums = np.bincount(self._containers, weights=power) if len(power) else np.zeros(0)
        ramping = self.bank.ramping(power)
        return Aggregate(
            taken_at_s=now_s,
            power_w={c: float(sums[c]) for c in self._present},
            nominal_w=self._nominal_w,
            rigs=len(self.plans),
            ramping=ramping,
        )

    def truth(self) -> list[dict[str, object]]:
        now_s = self.clock.now_s()
        out = []
        for rig in self.rigs.values():
            entry = rig.truth(now_s)
            entry["port"] = self.port_of(rig)
            out.append(entry)
        return out
