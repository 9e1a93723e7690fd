"""Every rule fires with the right labels after `for`, resolves after `clear`, and does not
flap; many rigs of one container down give one container alert."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from alerts_helpers import FACTS, SITE, make_engine, meter, retime, rig, snap

from minerd.alerts import AlertChange, AlertEngine, ChangeKind, SiteFacts
from minerd.clock import ManualClock
from minerd.model import MeterRole, MeterStatus, RigState, RigStatus, Severity

T0 = 1_800_000_000.0


def run(
    engine: AlertEngine,
    clock: ManualClock,
    seconds: int,
    rigs: Callable[[float], list[RigStatus]],
    meters: Callable[[float], list[MeterStatus]] | None = None,
    facts: SiteFacts = FACTS,
) -> list[AlertChange]:
    """Evaluate once per second for `seconds` s; return every change."""
    out: list[AlertChange] = []
    for _ in range(seconds):
        clock.advance(1.0)
        t = clock.now_s()
        out += engine.evaluate(snap(t, rigs(t), meters(t) if meters else None), facts, t)
    return out


def healthy(
    n: int = 5, container: str = "C1", prefix: str = "r"
) -> Callable[[float], list[RigStatus]]:
    return lambda t: [rig(f"{prefix}{i}", container, t=t) for i in range(n)]


def with_fault(fault: dict[str, object], rid: str = "r1") -> Callable[[float], list[RigStatus]]:
    def build(t: float) -> list[RigStatus]:
        return [
            rig(f"r{i}", "C1", t=t, **fault) if f"r{i}" == rid else rig(f"r{i}", "C1", t=t)  # type: ignore[arg-type]
            for i in range(5)
        ]

    return build


RIG_FAULTS = [
    ("RigOffline", {"state": RigState.OFFLINE, "fresh": False}, Severity.WARNING),
    ("RigHashrateLow", {"hashrate_ths": 50.0}, Severity.WARNING),
    ("RigChipTempHigh", {"chip_temp_c": 94.0}, Severity.CRITICAL),
    ("RigFanFailure", {"fan_rpm": 300}, Severity.CRITICAL),
    ("RigBoardDead", {"boards_ok": 2}, Severity.WARNING),
    ("RigIgnoresCommands", {"unresponsive": True}, Severity.WARNING),
]


@pytest.mark.parametrize(("rule", "fault", "severity"), RIG_FAULTS, ids=[r[0] for r in RIG_FAULTS])
def test_rig_fault_fires_after_for_and_resolves_after_clear(
    tmp_path: Path, rule: str, fault: dict[str, object], severity: Severity
) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    assert run(engine, clock, 5, healthy()) == []
    fault_start = clock.now_s() + 1
    assert run(engine, clock, 10, with_fault(fault)) == []  # held 9 s < for (10 s)
    fired = run(engine, clock, 1, with_fault(fault))
    assert [(c.kind, c.alert.rule) for c in fired] == [(ChangeKind.FIRED, rule)]
    a = fired[0].alert
    assert dict(a.labels) == {"site": SITE, "container": "C1", "rig": "r1"}
    assert a.severity is severity
    assert a.starts_at_s == fault_start
    assert "r1" in a.description and "What to do:" in a.description
    assert [x.alert_id for x in engine.active()] == [a.alert_id]
    assert engine.store.get(a.alert_id) == a
    # Fault cleared: still active during `clear` (20 s), resolved after it.
    clear_start = clock.now_s() + 1
    assert run(engine, clock, 20, healthy()) == []  # false for 19 s < clear (20 s)
    resolved = run(engine, clock, 1, healthy())
    assert [(c.kind, c.alert.alert_id) for c in resolved] == [(ChangeKind.RESOLVED, a.alert_id)]
    assert resolved[0].alert.ends_at_s == clear_start
    assert engine.active() == []
    stored = engine.store.get(a.alert_id)
    assert stored is not None and stored.ends_at_s == clear_start
    db.close()


def test_measured_values_are_in_the_description(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    changes = run(engine, clock, 12, with_fault({"hashrate_ths": 50.0, "power_w": 3250.0}))
    (c,) = changes
    assert "50.0 TH/s" in c.alert.description and "100.0 TH/s" in c.alert.description
    assert "50 %" in c.alert.description
    db.close()


def test_hashrate_expectation_follows_profile(tmp_path: Path) -> None:
    """80 TH/s is fine on the eco profile (80 expected), low on std (100 expected)."""
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    eco = with_fault({"hashrate_ths": 70.0, "power_w": 2400.0, "profile": "eco"})
    assert run(engine, clock, 15, eco) == []
    std = with_fault({"hashrate_ths": 70.0, "power_w": 3250.0, "profile": "std"})
    assert [c.alert.rule for c in run(engine, clock, 15, std)] == ["RigHashrateLow"]
    db.close()


def test_ignores_commands_from_site_facts(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    facts = dataclasses.replace(FACTS, commanded_not_reached=frozenset({"r3"}))
    changes = run(engine, clock, 12, healthy(), facts=facts)
    assert [(c.alert.rule, dict(c.alert.labels)["rig"]) for c in changes] == [
        ("RigIgnoresCommands", "r3")
    ]
    db.close()


def test_maintenance_rigs_raise_nothing(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    assert (
        run(engine, clock, 30, with_fault({"state": RigState.OFFLINE, "maintenance": True})) == []
    )
    db.close()


def test_flapping_condition_is_one_alert(tmp_path: Path) -> None:
    """Hot 5 s, cool 5 s, for 2 minutes: one alert, never resolved while it flaps."""
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    hot, cool = with_fault({"chip_temp_c": 96.0}), healthy()
    changes: list[AlertChange] = []
    changes += run(engine, clock, 11, hot)  # fires once held 10 s
    for _ in range(12):
        changes += run(engine, clock, 5, cool)
        changes += run(engine, clock, 5, hot)
    assert [c.kind for c in changes] == [ChangeKind.FIRED]
    changes = run(engine, clock, 25, cool)
    assert [c.kind for c in changes] == [ChangeKind.RESOLVED]
    db.close()


def test_short_blips_shorter_than_for_never_fire(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    off = with_fault({"state": RigState.OFFLINE, "fresh": False})
    changes: list[AlertChange] = []
    for _ in range(10):
        changes += run(engine, clock, 8, off)
        changes += run(engine, clock, 2, healthy())
    assert changes == []
    db.close()


def test_500_rigs_of_one_container_offline_give_one_container_alert(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)

    def fleet(down: bool) -> Callable[[float], list[RigStatus]]:
        def build(t: float) -> list[RigStatus]:
            c1 = [
                rig(f"c1-{i:03d}", "C1", t=t, state=RigState.OFFLINE, fresh=False)
                if down
                else rig(f"c1-{i:03d}", "C1", t=t)
                for i in range(500)
            ]
            return c1 + [rig(f"c2-{i:03d}", "C2", t=t) for i in range(50)]

        return build

    assert run(engine, clock, 3, fleet(False)) == []
    changes = run(engine, clock, 30, fleet(True))
    assert len(changes) == 1
    a = changes[0].alert
    assert (changes[0].kind, a.rule, a.severity) == (
        ChangeKind.FIRED, "ContainerRigsOffline", Severity.CRITICAL,
    )  # fmt: skip
    assert dict(a.labels) == {"site": SITE, "container": "C1"}
    assert a.summary == "500 of 500 rigs offline in container C1"
    assert "c1-000, c1-001" in a.description and "and 490 more" in a.description
    assert dict(a.extra)["count"] == "500"
    assert len(engine.active()) == 1
    changes = run(engine, clock, 30, fleet(False))
    assert [(c.kind, c.alert.rule) for c in changes] == [
        (ChangeKind.RESOLVED, "ContainerRigsOffline")
    ]
    db.close()


def test_few_rigs_of_a_big_container_are_alerted_one_by_one(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)

    def build(t: float) -> list[RigStatus]:
        return [
            rig(f"r{i}", "C1", t=t, state=RigState.OFFLINE, fresh=False)
            if i < 2
            else rig(f"r{i}", "C1", t=t)
            for i in range(100)
        ]

    changes = run(engine, clock, 12, build)
    assert sorted(dict(c.alert.labels)["rig"] for c in changes) == ["r0", "r1"]
    assert {c.alert.rule for c in changes} == {"RigOffline"}
    db.close()


def test_rig_removed_from_fleet_resolves_its_alert(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    assert len(run(engine, clock, 12, with_fault({"boards_ok": 1}))) == 1
    changes = run(engine, clock, 25, lambda t: [rig(f"r{i}", "C1", t=t) for i in (0, 2, 3, 4)])
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.RESOLVED, "RigBoardDead")]
    db.close()


# ---------------------------------------------------------------- meters

METER_FAULTS = [
    ("MeterOffline", {"fresh": False, "error": "connection refused"}),
    ("MeterStale", {"fresh": False}),
    ("MeterVoltageOutOfRange", {"volts": (262.0, 231.0, 229.0)}),
    ("MeterPhaseImbalance", {"amps": (200.0, 700.0, 710.0)}),
]


@pytest.mark.parametrize(("rule", "fault"), METER_FAULTS, ids=[m[0] for m in METER_FAULTS])
def test_meter_fault_fires_and_resolves(
    tmp_path: Path, rule: str, fault: dict[str, object]
) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)

    def feeder(bad: bool) -> Callable[[float], list[MeterStatus]]:
        def build(t: float) -> list[MeterStatus]:
            kw = fault if bad else {}
            return [
                meter("grid", t=t, power_w=500_000.0 + t % 7),
                meter("feeder-c1", t=t, role=MeterRole.FEEDER, container="C1",
                      power_w=16_000.0 + t % 5, **kw),  # type: ignore[arg-type]
            ]  # fmt: skip

        return build

    assert run(engine, clock, 5, healthy(), feeder(False)) == []
    changes = run(engine, clock, 12, healthy(), feeder(True))
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.FIRED, rule)]
    a = changes[0].alert
    assert dict(a.labels) == {"site": SITE, "container": "C1", "meter": "feeder-c1"}
    assert a.severity is Severity.WARNING  # a feeder meter; the grid meter's would be critical
    changes = run(engine, clock, 40, healthy(), feeder(False))
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.RESOLVED, rule)]
    db.close()


def test_grid_meter_offline_is_critical(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    changes = run(
        engine, clock, 12, healthy(), lambda t: [meter(t=t, fresh=False, error="timeout")]
    )
    assert [(c.alert.rule, c.alert.severity) for c in changes] == [
        ("MeterOffline", Severity.CRITICAL)
    ]
    assert "timeout" in changes[0].alert.description
    db.close()


def test_meter_frozen_after_n_identical_reads(tmp_path: Path) -> None:
    """New reads (new timestamps) with identical values: frozen after 10 reads; the same
    read seen again in several snapshots does not count."""
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    frozen_at = T0 + 3.5

    def live(t: float) -> list[MeterStatus]:
        return [meter(t=t, power_w=500_000.0 + t % 11)]

    def frozen(t: float) -> list[MeterStatus]:
        return [meter(t=t, power_w=400_000.0, energy_kwh=123.0)]

    def stuck_poller(t: float) -> list[MeterStatus]:
        return [meter(t=frozen_at, power_w=400_000.0, energy_kwh=123.0)]

    assert run(engine, clock, 3, healthy(), live) == []
    assert run(engine, clock, 30, healthy(), stuck_poller) == []  # one read seen 30 times
    assert run(engine, clock, 8, healthy(), frozen) == []  # 9 identical reads so far
    changes = run(engine, clock, 1, healthy(), frozen)
    assert [(c.alert.rule, c.alert.severity) for c in changes] == [
        ("MeterFrozen", Severity.CRITICAL)
    ]
    assert "10 reads in a row" in changes[0].alert.description
    changes = run(engine, clock, 15, healthy(), live)
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.RESOLVED, "MeterFrozen")]
    db.close()


# ---------------------------------------------------------------- site


def test_quota_breach_fires_only_after_n_seconds_over(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)

    def grid(kw: float) -> Callable[[float], list[MeterStatus]]:
        return lambda t: [meter(t=t, power_w=kw * 1000.0 + t % 3)]

    # 8 s over the limit, then back: no alert (for = 10 s).
    assert run(engine, clock, 8, healthy(), grid(1100.0)) == []
    assert run(engine, clock, 5, healthy(), grid(950.0)) == []
    changes = run(engine, clock, 12, healthy(), grid(1100.0))
    assert [(c.alert.rule, c.alert.severity) for c in changes] == [
        ("QuotaBreach", Severity.CRITICAL)
    ]
    a = changes[0].alert
    assert dict(a.labels) == {"site": SITE}
    assert "limit 1000.0 kW" in a.description and "excess 100.0 kW" in a.description
    changes = run(engine, clock, 25, healthy(), grid(900.0))
    assert [c.kind for c in changes] == [ChangeKind.RESOLVED]
    db.close()


SITE_FAULTS = [
    ("FailsafeEngaged", {"failsafe_engaged": True, "failsafe_reason": "grid meter stale"}),
    ("SpoolFilling", {"spool_fill_ratio": 0.7}),
    ("TsdbUnreachable", {"tsdb_reachable": False}),
    ("StorageFailing", {"storage_problem": "journal intents failing: database or disk is full"}),
]


@pytest.mark.parametrize(("rule", "fault"), SITE_FAULTS, ids=[s[0] for s in SITE_FAULTS])
def test_site_fact_rules(tmp_path: Path, rule: str, fault: dict[str, object]) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    bad = dataclasses.replace(FACTS, **fault)  # type: ignore[arg-type]
    changes = run(engine, clock, 12, healthy(), facts=bad)
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.FIRED, rule)]
    assert dict(changes[0].alert.labels) == {"site": SITE}
    if rule == "FailsafeEngaged":
        assert "grid meter stale" in changes[0].alert.description
        assert changes[0].alert.starts_at_s == T0 + 1  # for = 0: fires at once
    changes = run(engine, clock, 25, healthy())
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.RESOLVED, rule)]
    db.close()


def test_unchanged_snapshot_reuses_objects_and_costs_no_writes(tmp_path: Path) -> None:
    """A steady faulty fleet: after firing, evaluations return nothing and queue nothing."""
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    rigs = retime(with_fault({"fan_rpm": 0})(T0), T0)
    assert len(run(engine, clock, 12, lambda t: rigs)) == 1
    assert run(engine, clock, 100, lambda t: rigs) == []
    db.close()


def test_container_alert_follows_its_count_without_new_notifications(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)

    def down(n: int) -> Callable[[float], list[RigStatus]]:
        return lambda t: [
            rig(f"r{i:03d}", "C1", t=t, state=RigState.OFFLINE, fresh=False)
            if i < n
            else rig(f"r{i:03d}", "C1", t=t)
            for i in range(200)
        ]

    (fired,) = run(engine, clock, 12, down(25))
    assert fired.alert.summary == "25 of 200 rigs offline in container C1"
    assert run(engine, clock, 5, down(150)) == []  # no new alert, no rig alerts
    (active,) = engine.active()
    assert active.alert_id == fired.alert.alert_id
    assert active.summary == "150 of 200 rigs offline in container C1"
    stored = engine.store.get(active.alert_id)
    assert stored is not None and stored.summary == active.summary
    db.close()
