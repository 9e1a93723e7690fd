"""A mixed fleet for the cluster tests: the shipped rig profiles plus a sleep-only model."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from minerd.control.planner import PlanRig
from minerd.model import ControlMode, RigModel, RigState
from minerd.profiles.loader import load_rig_model

SHARDS = ("s1", "s2", "s3", "s4")


def models() -> list[RigModel]:
    shipped = [load_rig_model(n) for n in ("bitmain-s19jpro", "bitmain-s21", "microbt-m50s")]
    # A rig that can only sleep or run flat out (no profiles): a discrete single step.
    old = shipped[0]
    sleep_only = RigModel(
        name="test-sleep-only",
        vendor="test",
        model="sleep-only",
        nominal_power_w=3250.0,
        nominal_hashrate_ths=95.0,
        sleep_power_w=15.0,
        min_power_w=0.0,
        max_power_w=0.0,
        modes=frozenset({ControlMode.SLEEP_WAKE}),
        profiles=(),
        curve=(),
        wake_time_s=old.wake_time_s,
        sleep_time_s=old.sleep_time_s,
        chip_temp_derate_c=old.chip_temp_derate_c,
        chip_temp_max_c=old.chip_temp_max_c,
        boards=3,
        fans=4,
        fan_rpm_nominal=6000,
    )
    return [*shipped, sleep_only]


def mixed_fleet(n: int, seed: int = 7) -> list[PlanRig]:
    """n rigs: mixed models, some asleep, some warm, some in min-on/min-off, a few fixed."""
    rng = random.Random(seed)
    ms = models()
    rigs: list[PlanRig] = []
    for k in range(n):
        m = rng.choice(ms)
        awake = rng.random() < 0.75
        if awake:
            power_w = rng.choice([p.power_w for p in m.profiles] or [m.nominal_power_w])
        else:
            power_w = m.sleep_power_w
        rigs.append(
            PlanRig(
                rig_id=f"rig-{k:06d}",
                model=m,
                awake=awake,
                power_w=power_w,
                state=RigState.HASHING if awake else RigState.SLEEPING,
                chip_temp_c=rng.choice([None, 60.0, 60.0, 60.0, m.chip_temp_derate_c + 1.0]),
                since_switch_s=rng.choice([30.0, 10_000.0, 10_000.0, 10_000.0]),
                maintenance=rng.random() < 0.01,
                unresponsive=rng.random() < 0.01,
            )
        )
    return rigs


def shard_of(rig_id: str, shards: Sequence[str] = SHARDS) -> str:
    """A stable hash of the rig id (the same on every machine and Python run)."""
    return shards[zlib.crc32(rig_id.encode()) % len(shards)]


def by_shard(rigs: Sequence[PlanRig], shards: Sequence[str] = SHARDS) -> dict[str, list[PlanRig]]:
    out: dict[str, list[PlanRig]] = {s: [] for s in shards}
    for r in rigs:
        out[shard_of(r.rig_id, shards)].append(r)
    return out
