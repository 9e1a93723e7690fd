"""A small simulated site for closed-loop tests: rigs follow setpoints with a lag, the grid
meter sums rigs + true auxiliary load + an unmodelled load + noise. Time is injected."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from minerd.control.loop import LoopConfig, LoopDecision, LoopInputs, LoopState, step
from minerd.control.planner import PlanConstraints, PlanRig, plan
from minerd.model import EffectiveLimit, RigModel, RigSetpoint, RigState


@dataclass
class SimRig:
    rig_id: str
    model: RigModel
    power_w: float
    awake: bool = True
    target_w: float = 0.0
    profile: str | None = None
    wake_at_s: float | None = None  # draws power only after wake_time_s
    last_switch_s: float = -1e9

    def command(self, sp: RigSetpoint, t_s: float) -> None:
        if sp.awake != self.awake:
            self.awake = sp.awake
            self.last_switch_s = t_s
            self.wake_at_s = t_s + self.model.wake_time_s if sp.awake else None
        self.target_w = sp.power_w
        self.profile = sp.profile

    def advance(self, t_s: float, dt_s: float) -> None:
        target = self.target_w if self.awake else self.model.sleep_power_w
        if self.wake_at_s is not None and t_s < self.wake_at_s:
            target = self.model.sleep_power_w
        if target < self.power_w:
            # Going down completes within sleep_time_s (linear).
            rate = self.model.nominal_power_w / self.model.sleep_time_s
            self.power_w = max(target, self.power_w - rate * dt_s)
        else:
            # Going up: first-order lag, time constant 2 s.
            self.power_w += (target - self.power_w) * min(1.0, dt_s / 2.0)


@dataclass
class Site:
    rigs: list[SimRig]
    config: LoopConfig
    constraints: PlanConstraints
    aux_base_true_kw: float = 12.0
    aux_fraction_true: float = 0.06
    unmodelled_kw: float = 0.0
    noise_kw: float = 0.3
    seed: int = 1
    t_s: float = 0.0
    state: LoopState = field(default_factory=LoopState)
    history: list[tuple[float, float, float, LoopDecision]] = field(default_factory=list)
    grid_fresh: bool = True
    reading_interval_s: int = 0  # > 0: each rig reports its power only every this many s
    use_planned: bool = True  # pass the last plan's power so lagging readings are recognised

    def reported_rig_power_w(self) -> float:
        if self.reading_interval_s <= 0:
            return self.rig_power_w()
        k = int(self.t_s)
        for i, r in enumerate(self.rigs):
            if (k + i) % self.reading_interval_s == 0:  # polls staggered over the interval
                self.reported[r.rig_id] = r.power_w
        return sum(self.reported.get(r.rig_id, r.power_w) for r in self.rigs)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.reported: dict[str, float] = {}
        self.planned_w: float | None = None

    def rig_power_w(self) -> float:
        return sum(r.power_w for r in self.rigs)

    def import_kw(self) -> float:
        rig_kw = self.rig_power_w() / 1000.0
        noise = self.rng.uniform(-self.noise_kw, self.noise_kw)
        return (
            rig_kw * (1 + self.aux_fraction_true)
            + self.aux_base_true_kw
            + self.unmodelled_kw
            + noise
        )

    def cycle(self, limit_kw: float) -> LoopDecision:
        measured = self.import_kw()
        worst = sum(
            r.model.nominal_power_w if r.awake else r.model.sleep_power_w for r in self.rigs
        )
        inputs = LoopInputs(
            t_s=self.t_s,
            limit=EffectiveLimit(limit_kw, "quota", "q"),
            grid_fresh=self.grid_fresh,
            grid_import_kw=measured,
            rig_power_w=self.reported_rig_power_w(),
            worst_case_rig_power_w=worst,
            planned_rig_power_w=self.planned_w if self.use_planned else None,
            max_rig_power_w=sum(r.model.max_power_w or r.model.nominal_power_w for r in self.rigs),
        )
        self.state, decision = step(self.state, inputs, self.config)
        plan_rigs = [
            PlanRig(
                r.rig_id,
                r.model,
                r.awake,
                # Fail-safe: every rig not known asleep is counted at nominal power.
                r.model.nominal_power_w if decision.failsafe and r.awake else r.power_w,
                RigState.HASHING if r.awake else RigState.SLEEPING,
                since_switch_s=self.t_s - r.last_switch_s,
                setpoint_power_w=(r.target_w or None) if r.awake else None,
                setpoint_profile=r.profile,
            )
            for r in self.rigs
        ]
        result = plan(decision.rig_budget_w, plan_rigs, self.constraints)
        self.planned_w = result.planned_power_w
        for r, sp in zip(self.rigs, result.setpoints, strict=True):
            r.command(sp, self.t_s)
        self.history.append((self.t_s, measured, limit_kw, decision))
        for r in self.rigs:
            r.advance(self.t_s, 1.0)
        self.t_s += 1.0
        return decision

    def true_import_kw(self) -> float:
        rig_kw = self.rig_power_w() / 1000.0
        return rig_kw * (1 + self.aux_fraction_true) + self.aux_base_true_kw + self.unmodelled_kw
