"""control.shed_capacity: what each rig can shed within 5 s, 60 s and 600 s, table-driven over
the shipped rig profiles' per-family reaction times (drivers/rigs [firmware.<family>])."""

from __future__ import annotations

from dataclasses import replace

import pytest

from minerd.control.shed_capacity import HORIZONS_S, floor_w, shed_capacity
from minerd.model import (
    ControlMode,
    FirmwareReaction,
    RigModel,
    RigProtocol,
    RigReading,
    RigState,
    RigStatus,
)
from minerd.profiles import load_rig_model

S19 = load_rig_model("bitmain-s19jpro")  # sleep 25 W; lowest profile 2300 W
M50S = load_rig_model("microbt-m50s")  # sleep 20 W
L, ST, VN, BR, WM, CG = (
    RigProtocol.LUXOS,
    RigProtocol.STOCK,
    RigProtocol.VNISH,
    RigProtocol.BRAIINS,
    RigProtocol.WHATSMINER,
    RigProtocol.CGMINER,
)

# A family that sleeps slowly but lowers its power target fast: the 60 s figure is the
# power-target floor, the 600 s one sleep.
SLOW_SLEEP = replace(
    S19,
    name="slow-sleep",
    firmware=(
        FirmwareReaction(
            family=RigProtocol.MQTT,
            sleep_time_s=120.0,
            wake_time_s=200.0,
            command_timeout_s=10.0,
            modes=frozenset({ControlMode.SLEEP_WAKE, ControlMode.POWER_TARGET}),
            power_change_s=20.0,
        ),
    ),
)


def rig(
    rig_id: str,
    model: RigModel,
    family: RigProtocol,
    power_w: float,
    *,
    state: RigState = RigState.HASHING,
    fresh: bool = True,
    maintenance: bool = False,
    unresponsive: bool = False,
) -> RigStatus:
    return RigStatus(
        rig_id=rig_id,
        model=model.name,
        container="c1",
        host="127.0.0.1",
        port=4028,
        protocol=family,
        reading=RigReading(rig_id, 100.0, state, "", power_w=power_w),
        fresh=fresh,
        maintenance=maintenance,
        unresponsive=unresponsive,
    )


def capacity(*rigs: tuple[RigStatus, RigModel], aux_fraction: float = 0.0) -> tuple[float, ...]:
    statuses = [st for st, _ in rigs]
    models = {st.rig_id: m.for_family(st.protocol) for st, m in rigs}
    return shed_capacity(statuses, models, aux_fraction=aux_fraction).rig_w


@pytest.mark.parametrize(
    ("model", "family", "power_w", "expected_w"),
    [
        # LuxOS curtails to sleep in 5 s: everything above 25 W, at every horizon.
        (S19, L, 3068.0, (3043.0, 3043.0, 3043.0)),
        # Stock sleeps in 45 s (miner restart) and has no profiles: nothing within 5 s.
        (S19, ST, 3068.0, (0.0, 3043.0, 3043.0)),
        # Vnish sleeps in 15 s; its presets take 60 s: nothing within 5 s.
        (S19, VN, 3068.0, (0.0, 3043.0, 3043.0)),
        # Braiins pauses in 5 s.
        (S19, BR, 3068.0, (3043.0, 3043.0, 3043.0)),
        # Whatsminer powers off in 10 s; its power-target change takes 30 s.
        (M50S, WM, 3276.0, (0.0, 3256.0, 3256.0)),
        # Plain cgminer is read only.
        (S19, CG, 3068.0, (0.0, 0.0, 0.0)),
        # Slow sleep, fast power target: the power-target minimum (1800 W) within 60 s.
        (SLOW_SLEEP, RigProtocol.MQTT, 3068.0, (0.0, 1268.0, 3043.0)),
        # Already at (or below) its 60 s floor: nothing more within 60 s.
        (SLOW_SLEEP, RigProtocol.MQTT, 1750.0, (0.0, 0.0, 1725.0)),
    ],
)
def test_one_hashing_rig_sheds_down_to_the_floor_its_family_reaches_in_time(
    model: RigModel, family: RigProtocol, power_w: float, expected_w: tuple[float, ...]
) -> None:
    assert capacity((rig("r1", model, family, power_w), model)) == pytest.approx(expected_w)


@pytest.mark.parametrize(
    ("label", "kwargs"),
    [
        ("asleep", {"state": RigState.SLEEPING}),
        ("offline", {"state": RigState.OFFLINE}),
        ("faulted", {"state": RigState.FAULT}),
        ("state unknown", {"state": RigState.UNKNOWN}),
        ("stale reading", {"fresh": False}),
        ("in maintenance", {"maintenance": True}),
        ("ignores commands", {"unresponsive": True}),
    ],
)
def test_a_rig_minerd_cannot_command_now_counts_nothing(
    label: str, kwargs: dict[str, object]
) -> None:
    able = rig("able", S19, L, 3000.0)
    other = rig("other", S19, L, 3000.0, **kwargs)  # type: ignore[arg-type]
    assert capacity((able, S19), (other, S19)) == pytest.approx((2975.0,) * 3), label


def test_floor_per_horizon_follows_the_family_reaction_times() -> None:
    assert [floor_w(S19.for_family(ST), ST, h) for h in (5.0, 44.9, 45.0)] == [None, None, 25.0]
    slow = SLOW_SLEEP.for_family(RigProtocol.MQTT)
    assert [floor_w(slow, RigProtocol.MQTT, h) for h in (19.0, 20.0, 120.0)] == [
        None,
        1800.0,
        25.0,
    ]
    assert floor_w(S19.for_family(CG), CG, 600.0) is None


def test_site_figures_are_import_kw_with_aux_and_classes_split_by_family_and_model() -> None:
    rigs = [
        (rig("l1", S19, L, 3068.0), S19),
        (rig("l2", S19, L, 3000.0), S19),
        (rig("s1", S19, ST, 3068.0), S19),
        (rig("w1", M50S, WM, 3276.0), M50S),
        (rig("z1", S19, L, 3068.0, state=RigState.SLEEPING), S19),
    ]
    models = {st.rig_id: m.for_family(st.protocol) for st, m in rigs}
    cap = shed_capacity([st for st, _ in rigs], models, aux_fraction=0.06)
    assert cap.horizons_s == HORIZONS_S
    assert [(c.family, c.model, c.rigs) for c in cap.classes] == [
        (L, "bitmain-s19jpro", 2),
        (ST, "bitmain-s19jpro", 1),
        (WM, "microbt-m50s", 1),
    ]
    rig_w = (3043.0 + 2975.0, 3043.0 + 2975.0 + 3043.0 + 3256.0, 12317.0)
    assert cap.rig_w == pytest.approx(rig_w)
    assert cap.site_kw == pytest.approx(tuple(w * 1.06 / 1000.0 for w in rig_w))
    by_family = cap.family_site_kw()
    assert by_family[L] == pytest.approx((6.018 * 1.06,) * 3)
    assert by_family[ST] == pytest.approx((0.0, 3.043 * 1.06, 3.043 * 1.06))
    assert sum(v[1] for v in by_family.values()) == pytest.approx(cap.site_kw[1])


def test_an_empty_or_all_asleep_fleet_can_shed_nothing() -> None:
    assert capacity() == (0.0, 0.0, 0.0)
    asleep = rig("z", S19, L, 25.0, state=RigState.SLEEPING)
    assert capacity((asleep, S19)) == (0.0, 0.0, 0.0)
