"""The energy award alerts (issue 15): a settlement interval that closes outside its award
band, and a grid meter energy register judged faulted.

Engine rules from the facts (as the quota breach and site fact rules are tested), then the
real path: an EnergyTracker pacing awards, the SettlementKeeper closing the intervals and the
daemon's AwardWatch telling the engine, over a few 10-minute intervals of cycles, and a
restart that keeps the alert in force."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alerts_helpers import FACTS, SITE, make_engine, meter, rig, snap

from minerd.alerts import AlertChange, AlertEngine, ChangeKind, SiteFacts
from minerd.alerts.awardcheck import SettledInterval
from minerd.clock import ManualClock
from minerd.control.energy_pace import FAULT_BACKWARDS, PaceConfig
from minerd.daemon.award_watch import AwardWatch
from minerd.model import (
    ComplianceRecord,
    EffectiveLimit,
    EnergyAward,
    FleetSnapshot,
    QuotaSource,
    Severity,
)
from minerd.runtime.energy_tracker import EnergyTracker
from minerd.runtime.settlement import SettlementKeeper
from minerd.storage import Database, Stores

T0 = 1_800_000_000.0  # a multiple of 600 s: intervals start on it
IV = 600.0
AWARD_KWH = 50.0  # 300 kW on average over 10 minutes


def settled(pct: float, limited_s: float = 0.0) -> SettledInterval:
    return SettledInterval(T0, IV, "2027-01-15 13:00\u201313:10 +05", "korem-1", 50_000.0,
                           500.0 * pct, limited_s)  # fmt: skip


def evaluate(engine: AlertEngine, clock: ManualClock, facts: SiteFacts) -> list[AlertChange]:
    clock.advance(1.0)
    t = clock.now_s()
    return engine.evaluate(snap(t, [rig("r1", t=t)]), facts, t)


BANDS = [
    (98.9, 0.0, "AwardShortfall", Severity.WARNING),
    (100.1, 0.0, "AwardOverrun", Severity.WARNING),
    (100.3, 0.0, "AwardOverrunCritical", Severity.CRITICAL),
    (100.3, 120.0, "AwardOverrunCritical", Severity.CRITICAL),  # a limit never excuses over
]


@pytest.mark.parametrize(("pct", "limited_s", "rule", "severity"), BANDS)
def test_an_interval_out_of_band_fires_and_the_next_in_band_resolves(
    tmp_path: Path, pct: float, limited_s: float, rule: str, severity: Severity
) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    out = dataclasses.replace(FACTS, settled=settled(pct, limited_s))
    changes = evaluate(engine, clock, out)
    assert [(c.kind, c.alert.rule, c.alert.severity) for c in changes] == [
        (ChangeKind.FIRED, rule, severity)
    ]
    a = changes[0].alert
    assert dict(a.labels) == {"site": SITE}
    assert f"imported {pct:.2f} % of its award for 2027-01-15 13:00" in a.summary
    assert f"imported {0.5 * pct:.3f} of 50.000 MWh ({pct:.2f} %" in a.description
    assert evaluate(engine, clock, out) == []  # the same interval: no new notification
    back = dataclasses.replace(FACTS, settled=settled(99.7))
    changes = evaluate(engine, clock, back)
    assert [(c.kind, c.alert.rule) for c in changes] == [(ChangeKind.RESOLVED, rule)]
    db.close()


@pytest.mark.parametrize("pct", [99.0, 99.6, 100.0])
def test_in_band_raises_nothing(tmp_path: Path, pct: float) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    assert evaluate(engine, clock, dataclasses.replace(FACTS, settled=settled(pct))) == []
    db.close()


def test_a_shortfall_under_a_power_limit_is_not_the_fleets(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    held = dataclasses.replace(FACTS, settled=settled(83.0, limited_s=600.0))
    assert evaluate(engine, clock, held) == []
    no_award = dataclasses.replace(settled(50.0), awarded_kwh=None)
    assert evaluate(engine, clock, dataclasses.replace(FACTS, settled=no_award)) == []
    db.close()


def test_register_fault_fires_when_the_count_rises_and_resolves_after_its_interval(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    engine, db = make_engine(tmp_path / "a.db", clock)
    faulted = dataclasses.replace(
        FACTS, energy_register_faults=1, energy_register_fault=FAULT_BACKWARDS
    )
    changes = evaluate(engine, clock, faulted)
    assert [(c.kind, c.alert.rule, c.alert.severity) for c in changes] == [
        (ChangeKind.FIRED, "EnergyRegisterFault", Severity.WARNING)
    ]
    assert FAULT_BACKWARDS in changes[0].alert.description
    assert "1 fault(s)" in changes[0].alert.description
    for _ in range(30):  # the interval it was seen in goes on: held
        assert evaluate(engine, clock, faulted) == []
    clean = dataclasses.replace(FACTS, energy_register_faults=1)  # next interval: believed
    changes = [c for _ in range(12) for c in evaluate(engine, clock, clean)]
    assert [(c.kind, c.alert.rule) for c in changes] == [
        (ChangeKind.RESOLVED, "EnergyRegisterFault")
    ]
    assert changes[0].alert.ends_at_s is not None
    assert changes[0].alert.ends_at_s + 10.0 <= clock.now_s()  # clear = 10 s
    db.close()


# ---------------------------------------------------------------- the real path


@dataclass(frozen=True)
class Decision:
    limit: EffectiveLimit


@dataclass(frozen=True)
class Cycle:
    """What the settlement keeper and the award watch read of a runtime CycleResult."""

    snapshot: FleetSnapshot
    decision: Decision
    compliance_minutes: tuple[ComplianceRecord, ...] = ()


class Plant:
    """One control cycle a second: the tracker caps the power limit with the award's pace,
    the site draws what `draw_kw(limit_kw)` says, the grid meter's register counts it."""

    def __init__(self, tmp_path: Path, clock: ManualClock, engine: AlertEngine) -> None:
        self.clock = clock
        self.engine = engine
        self.stores = Stores.open(Database(tmp_path / "site.db"))
        awards = [
            EnergyAward(f"korem-{i}", T0 + i * IV, T0 + (i + 1) * IV, AWARD_KWH,
                        QuotaSource.API, 0.0, "grid")
            for i in range(6)
        ]  # fmt: skip
        self.stores.awards.put(awards, "grid", T0 - 60.0)
        self.tracker = EnergyTracker(self.stores.awards, PaceConfig(max_kw=500.0, margin_kw=0.0))
        self.keeper = SettlementKeeper(self.stores, IV, ZoneInfo("Asia/Almaty"))
        self.watch = self.new_watch()
        self.register_kwh = 9000.0
        self.power_kw = 0.0
        self.power_limit = EffectiveLimit(450.0, "contracted")
        self.changes: list[AlertChange] = []

    def new_watch(self) -> AwardWatch:
        watch = AwardWatch(lambda: self.tracker, ZoneInfo("Asia/Almaty"), self.clock,
                           self.stores.state)  # fmt: skip
        watch.restore()
        self.keeper.on_closed[:] = [watch.on_closed]
        return watch

    def run(self, seconds: int, draw_kw: float | None = None, jump_kwh: float = 0.0) -> None:
        for i in range(seconds):
            self.clock.advance(1.0)
            t = self.clock.now_s()
            if i == seconds // 2:
                self.register_kwh += jump_kwh
            m = meter(t=t, power_w=self.power_kw * 1000.0, energy_kwh=self.register_kwh)
            s = snap(t, [rig("r1", t=t)], [m])
            limit = self.tracker.cap(self.power_limit, s, t)
            cycle = Cycle(s, Decision(limit))
            self.keeper.on_cycle(cycle)
            self.watch.on_cycle(cycle)
            faults, fault = self.watch.register()
            facts = SiteFacts(
                effective_limit_kw=1e9,  # the quota breach rule is not under test here
                settled=self.watch.settled,
                energy_register_faults=faults,
                energy_register_fault=fault,
            )
            self.changes += self.engine.evaluate(s, facts, t)
            self.power_kw = limit.limit_kw if draw_kw is None else draw_kw
            self.register_kwh += self.power_kw / 3600.0

    def took(self) -> list[tuple[ChangeKind, str]]:
        out, self.changes = [(c.kind, c.alert.rule) for c in self.changes], []
        return out


def test_award_alerts_over_intervals_of_cycles_and_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(T0 - 5.0)
    engine, db = make_engine(tmp_path / "alerts.db", clock)
    plant = Plant(tmp_path, clock, engine)
    plant.run(5)  # up to the first interval's start
    # Each run ends on the first cycle of the next interval, which closes the one run.
    # 1: the site follows the pace; its meter's register goes backwards halfway.
    plant.run(int(IV), jump_kwh=-3.0)
    assert plant.took() == [(ChangeKind.FIRED, "EnergyRegisterFault")]
    assert plant.tracker.register_faults == 1
    s1 = plant.watch.settled
    assert s1 is not None and s1.award_id == "korem-0"
    share1 = s1.share_pct
    assert share1 is not None and 99.0 <= share1 <= 100.0
    # 2: the fleet can draw only 200 kW: a shortfall the fleet is to blame for. This
    # interval's register is believed again: the fault resolves.
    plant.run(int(IV), draw_kw=200.0)
    assert plant.took() == [
        (ChangeKind.RESOLVED, "EnergyRegisterFault"),
        (ChangeKind.FIRED, "AwardShortfall"),
    ]
    s2 = plant.watch.settled
    assert s2 is not None and s2.award_id == "korem-1" and s2.limited_s == 0.0
    share2 = s2.share_pct
    assert share2 is not None and share2 == pytest.approx(66.7, abs=0.5)
    shortfall = next(a for a in engine.active() if a.rule == "AwardShortfall")
    assert f"{share2:.2f} %" in shortfall.summary and "korem-1" in shortfall.description
    # 3: a 250 kW quota holds the site below the 300 kW pace all interval: under its award,
    # but the limit's doing, so the shortfall resolves.
    plant.power_limit = EffectiveLimit(250.0, "quota", "q-evening")
    plant.run(int(IV))
    s3 = plant.watch.settled
    assert s3 is not None and s3.award_id == "korem-2"
    assert s3.limited_s == pytest.approx(IV, abs=2.0)
    share3 = s3.share_pct
    assert share3 is not None and share3 == pytest.approx(83.3, abs=1.0)
    assert plant.took() == [(ChangeKind.RESOLVED, "AwardShortfall")]
    # 4: the limit lifted, the site ignores the pace and draws 0.15 % over the award's mean.
    plant.power_limit = EffectiveLimit(450.0, "contracted")
    plant.run(int(IV), draw_kw=300.0 * 1.0015)
    s4 = plant.watch.settled
    share4 = s4.share_pct if s4 is not None else None
    assert share4 is not None and 100.0 < share4 < 100.2
    assert plant.took() == [(ChangeKind.FIRED, "AwardOverrun")]
    # 5: 320 kW: beyond tolerance.
    plant.run(int(IV), draw_kw=320.0)
    s5 = plant.watch.settled
    share5 = s5.share_pct if s5 is not None else None
    assert share5 is not None and share5 == pytest.approx(106.7, abs=0.5)
    assert sorted(plant.took()) == [
        (ChangeKind.FIRED, "AwardOverrunCritical"),
        (ChangeKind.RESOLVED, "AwardOverrun"),
    ]
    # A restart: the watch comes back from the state store with interval 5's verdict, so the
    # restored alert is still in force after the first evaluation, not resolved.
    db.close()
    engine2, db2 = make_engine(tmp_path / "alerts.db", clock)
    assert [a.rule for a in engine2.active()] == ["AwardOverrunCritical"]
    plant.engine = engine2
    plant.tracker = EnergyTracker(plant.stores.awards, PaceConfig(max_kw=500.0, margin_kw=0.0))
    plant.watch = plant.new_watch()
    assert plant.watch.settled == s5
    plant.run(3, draw_kw=300.0)
    assert plant.took() == []
    assert [a.rule for a in engine2.active()] == ["AwardOverrunCritical"]
    db2.close()
    plant.stores.db.close()


def test_a_limit_before_a_restart_still_excuses_the_shortfall(tmp_path: Path) -> None:
    clock = ManualClock(T0 - 5.0)
    engine, db = make_engine(tmp_path / "alerts.db", clock)
    plant = Plant(tmp_path, clock, engine)
    plant.run(5)
    plant.power_limit = EffectiveLimit(250.0, "quota", "q-noon")  # below the 300 kW mean
    plant.run(200)
    plant.watch = plant.new_watch()  # minerd restarts; the watch comes back from its state
    plant.power_limit = EffectiveLimit(450.0, "contracted")
    plant.run(int(IV) - 200, draw_kw=200.0)  # the fleet then falls short as well
    s = plant.watch.settled
    assert s is not None and s.award_id == "korem-0"
    share = s.share_pct
    assert share is not None and share < 80.0
    assert s.limited_s == pytest.approx(200.0, abs=31.0)  # saved at least every 30 s
    assert plant.took() == []  # the quota's doing, before and after the restart
    db.close()
    plant.stores.db.close()
