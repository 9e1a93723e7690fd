"""Price-aware dispatch, pure: breakeven maths, the planner's J/TH filter with the shipped
S21 and S19j Pro profiles, use_every_kw, the stale rule and the tariff table."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from minerd.control.economics import (
    Decision,
    EconomicsState,
    PriceInterval,
    Rates,
    Tariff,
    TariffRule,
    best_j_per_th,
    breakeven_j_per_th,
    decide,
    hourly,
    models_off,
)
from minerd.control.options import OpPoint, allowed_points, worth_running
from minerd.control.planner import PRICED_OUT_REASON, PlanConstraints, PlanRig, plan
from minerd.model import RigModel, RigState
from minerd.profiles import load_rig_model

S21 = load_rig_model("bitmain-s21")
S19JPRO = load_rig_model("bitmain-s19jpro")
HASHPRICE = 0.05  # USD per TH/s per day
FEE = 0.02


def rates(price_per_mwh: float, *, fx: float = 1.0) -> Rates:
    return Rates(price_per_mwh, HASHPRICE, currency_per_usd=fx, pool_fee_fraction=FEE)


def breakeven_price(model: RigModel) -> float:
    """The energy price (USD/MWh) at which the model's best point just pays for itself."""
    return HASHPRICE * (1 - FEE) / (best_j_per_th(model) * 24e-6)


def fleet(n: int = 6, *, since_switch_s: float = math.inf) -> list[PlanRig]:
    rigs = []
    for i in range(n):
        for model, tag in ((S21, "s21"), (S19JPRO, "s19")):
            rigs.append(
                PlanRig(
                    f"{tag}-{i:02d}",
                    model,
                    True,
                    model.nominal_power_w,
                    RigState.HASHING,
                    since_switch_s=since_switch_s,
                )
            )
    return rigs


# ------------------------------------------------------------------ maths


def test_breakeven_is_where_revenue_meets_energy_cost() -> None:
    r = rates(100.0)
    be = breakeven_j_per_th(r)
    # 0.05 x 0.98 USD per TH/s per day over 100 USD/MWh x 24e-6 MWh per W per day
    assert be == pytest.approx(0.049 / 0.0024)
    # A 100 TH/s rig at exactly the breakeven: revenue equals energy cost, margin zero.
    money = hourly(be * 100.0, 100.0, r)
    assert money.revenue_per_h == pytest.approx(0.049 * 100.0 / 24.0)
    assert money.margin_per_h == pytest.approx(0.0, abs=1e-12)
    # More efficient than breakeven earns; less efficient loses.
    assert hourly(0.9 * be * 100.0, 100.0, r).margin_per_h > 0
    assert hourly(1.1 * be * 100.0, 100.0, r).margin_per_h < 0


def test_exchange_rate_converts_hashprice_into_the_energy_currency() -> None:
    # 500 KZT per USD: 50,000 KZT/MWh is 100 USD/MWh, so the same breakeven.
    assert breakeven_j_per_th(rates(50_000.0, fx=500.0)) == pytest.approx(
        breakeven_j_per_th(rates(100.0))
    )
    assert hourly(3500, 200, rates(50_000.0, fx=500.0)).revenue_per_h == pytest.approx(
        500.0 * hourly(3500, 200, rates(100.0)).revenue_per_h
    )


def test_free_energy_has_no_breakeven() -> None:
    assert math.isinf(breakeven_j_per_th(rates(0.0)))
    d = decide(rates=rates(0.0), hashprice_fresh=True, use_every_kw=False, last=None)
    assert d.state is EconomicsState.ACTIVE and d.max_j_per_th is None


def test_shipped_profiles_best_points() -> None:
    # From drivers/rigs: S21 "-2" 2700 W / 165 TH/s; S19j Pro "-2" 2300 W / 87 TH/s.
    assert best_j_per_th(S21) == pytest.approx(2700 / 165)
    assert best_j_per_th(S19JPRO) == pytest.approx(2300 / 87)
    assert breakeven_price(S19JPRO) < breakeven_price(S21)


# ------------------------------------------------------------------ the planner


def test_price_between_breakevens_runs_s21_and_sleeps_s19j_pro() -> None:
    price = (breakeven_price(S19JPRO) + breakeven_price(S21)) / 2  # ~101 USD/MWh
    d = decide(rates=rates(price), hashprice_fresh=True, use_every_kw=False, last=None)
    assert d.state is EconomicsState.ACTIVE and d.max_j_per_th is not None
    rigs = fleet()
    budget_w = 1e9  # power is plentiful: only price decides
    p = plan(budget_w, rigs, PlanConstraints(max_j_per_th=d.max_j_per_th))
    for r, sp in zip(rigs, p.setpoints, strict=True):
        if r.model is S21:
            # At ~20.2 J/TH breakeven only "-2" pays: each step up costs more than it adds
            # ("-2" -> "-1": 400 W for 18 TH/s, 22.2 J/TH at the margin).
            assert sp.awake and sp.profile == "-2", sp
            assert sp.power_w / _ths(S21, sp.profile) <= d.max_j_per_th
        else:
            assert not sp.awake, sp
            assert sp.power_w == S19JPRO.sleep_power_w
            assert sp.reason == PRICED_OUT_REASON
    assert models_off([S21, S19JPRO], d.max_j_per_th) == ("bitmain-s19jpro",)
    # Without economics, power being plentiful, both models run.
    free = plan(budget_w, rigs, PlanConstraints())
    assert all(sp.awake for sp in free.setpoints)


def _ths(model: RigModel, profile: str | None) -> float:
    return next(p.hashrate_ths for p in model.profiles if p.name == profile)


def test_a_step_up_that_costs_more_than_it_adds_goes() -> None:
    # S21 steps: "-2" -> "-1" 22.2 J/TH at the margin, "-1" -> "default" 23.5,
    # "default" -> "+1" 27.3 (300 W for 11 TH/s), though "+1" averages only 18.0 J/TH.
    limit = 25.0
    pts = allowed_points(S21, with_sleep=True, cap_w=None, max_j_per_th=limit)
    assert [p.profile for p in pts if not p.sleep] == ["-2", "-1", "default"]
    p = plan(1e9, fleet(2), PlanConstraints(max_j_per_th=limit))
    s21 = [sp for sp in p.setpoints if sp.rig_id.startswith("s21")]
    assert {sp.profile for sp in s21} == {"default"}
    # Money per rig and day at that breakeven: "+1" earns less than "default".
    r = Rates(0.049 / (limit * 24e-6), 0.05, 1.0, 0.02)
    assert hourly(3800, 211, r).margin_per_h < hourly(3500, 200, r).margin_per_h


def test_price_above_both_breakevens_sleeps_both() -> None:
    price = breakeven_price(S21) * 1.05
    d = decide(rates=rates(price), hashprice_fresh=True, use_every_kw=False, last=None)
    p = plan(1e9, fleet(), PlanConstraints(max_j_per_th=d.max_j_per_th))
    assert not any(sp.awake for sp in p.setpoints)
    assert {sp.reason for sp in p.setpoints} == {PRICED_OUT_REASON}
    # Under a tight budget with no economics, a sleeping rig's reason stays the budget.
    tight = plan(0.0, fleet(), PlanConstraints())
    assert PRICED_OUT_REASON not in {sp.reason for sp in tight.setpoints}


def test_a_low_enough_price_filters_nothing() -> None:
    price = breakeven_price(S19JPRO) * 0.2  # every point and every step up pays
    d = decide(rates=rates(price), hashprice_fresh=True, use_every_kw=False, last=None)
    filtered = plan(1e9, fleet(), PlanConstraints(max_j_per_th=d.max_j_per_th))
    assert filtered.setpoints == plan(1e9, fleet(), PlanConstraints()).setpoints


def test_min_on_rig_is_held_at_its_lowest_point_not_slept() -> None:
    # In its min-on window a rig may not sleep: economics leaves it its cheapest point.
    price = (breakeven_price(S19JPRO) + breakeven_price(S21)) / 2
    limit = breakeven_j_per_th(rates(price))
    rigs = fleet(2, since_switch_s=10.0)
    p = plan(1e9, rigs, PlanConstraints(min_on_s=300.0, max_j_per_th=limit))
    s19 = [sp for sp in p.setpoints if sp.rig_id.startswith("s19")]
    assert all(sp.awake and sp.profile == "-2" for sp in s19), s19


def test_economics_never_raises_power_under_a_tight_budget() -> None:
    limit = breakeven_j_per_th(rates((breakeven_price(S19JPRO) + breakeven_price(S21)) / 2))
    rigs = fleet()
    for budget_w in (0.0, 5_000.0, 20_000.0, 40_000.0):
        with_econ = plan(budget_w, rigs, PlanConstraints(max_j_per_th=limit))
        without = plan(budget_w, rigs, PlanConstraints())
        assert with_econ.planned_power_w <= budget_w + 1e-6 or with_econ.shortfall_w > 0
        assert with_econ.planned_power_w <= without.planned_power_w + 1e-6


# ------------------------------------------------------------------ the decision rules


def test_use_every_kw_never_filters() -> None:
    price = breakeven_price(S21) * 3  # everything loses money
    d = decide(rates=rates(price), hashprice_fresh=True, use_every_kw=True, last=None)
    assert d.state is EconomicsState.USE_EVERY_KW
    assert d.max_j_per_th is None
    assert d.breakeven_j_per_th == pytest.approx(breakeven_j_per_th(rates(price)))
    p = plan(1e9, fleet(), PlanConstraints(max_j_per_th=d.max_j_per_th))
    assert all(sp.awake for sp in p.setpoints)


def test_stale_hashprice_keeps_the_last_decision() -> None:
    active = decide(rates=rates(100.0), hashprice_fresh=True, use_every_kw=False, last=None)
    assert active.max_j_per_th == pytest.approx(breakeven_j_per_th(rates(100.0)))
    # Stale, and meanwhile the price moved: the last breakeven stays in force, not "stop
    # everything" (0) and not "run everything" (None).
    stale = decide(rates=rates(300.0), hashprice_fresh=False, use_every_kw=False, last=active)
    assert stale.state is EconomicsState.STALE
    assert stale.max_j_per_th == active.max_j_per_th
    again = decide(rates=rates(10.0), hashprice_fresh=False, use_every_kw=False, last=stale)
    assert again.max_j_per_th == active.max_j_per_th
    # Fresh again: the current rates decide.
    back = decide(rates=rates(300.0), hashprice_fresh=True, use_every_kw=False, last=again)
    assert back.state is EconomicsState.ACTIVE
    assert back.max_j_per_th == pytest.approx(breakeven_j_per_th(rates(300.0)))


def test_stale_without_any_earlier_filter_filters_nothing() -> None:
    off = Decision(EconomicsState.OFF, None, None, "no hashprice")
    d = decide(rates=rates(300.0), hashprice_fresh=False, use_every_kw=False, last=off)
    assert d.state is EconomicsState.STALE and d.max_j_per_th is None


def test_no_rates_is_off_with_the_reason() -> None:
    d = decide(
        rates=None,
        hashprice_fresh=False,
        use_every_kw=False,
        last=None,
        missing=EconomicsState.NO_PRICE,
        why_missing="no energy price for this hour",
    )
    assert d == Decision(EconomicsState.NO_PRICE, None, None, "no energy price for this hour")


# ------------------------------------------------------------------ the tariff


def _at(text: str, tz: str = "Asia/Almaty") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_tariff_by_hour_and_weekday_in_site_time() -> None:
    tariff = Tariff(
        timezone="Asia/Almaty",
        rules=(
            TariffRule(40.0, from_hour=22, to_hour=6),  # night, wraps midnight
            TariffRule(90.0, from_hour=8, to_hour=20, weekdays=frozenset(range(5))),
        ),
        default_per_mwh=60.0,
    )
    assert tariff.price_at(_at("2026-12-01T23:30")) == 40.0  # Tuesday night
    assert tariff.price_at(_at("2026-12-02T05:59")) == 40.0  # the same night, next day
    assert tariff.price_at(_at("2026-12-02T06:00")) == 60.0
    assert tariff.price_at(_at("2026-12-02T12:00")) == 90.0  # Wednesday day
    assert tariff.price_at(_at("2026-12-05T12:00")) == 60.0  # Saturday: default
    # The same instant read in UTC is 5 h earlier: local hours, not UTC ones, decide.
    assert tariff.price_at(_at("2026-12-02T08:30")) == 90.0
    assert tariff.price_at(_at("2026-12-02T03:30", "UTC")) == 90.0


def test_night_rule_belongs_to_the_day_it_starts() -> None:
    friday_night = TariffRule(30.0, from_hour=22, to_hour=6, weekdays=frozenset({4}))
    tariff = Tariff(timezone="UTC", rules=(friday_night,))
    assert tariff.price_at(_at("2026-12-04T23:00", "UTC")) == 30.0  # Friday 23:00
    assert tariff.price_at(_at("2026-12-05T03:00", "UTC")) == 30.0  # Saturday 03:00
    assert tariff.price_at(_at("2026-12-06T03:00", "UTC")) is None  # Sunday 03:00


def test_set_price_intervals_win_over_the_tariff() -> None:
    tariff = Tariff(timezone="UTC", default_per_mwh=60.0)
    t = _at("2026-12-02T10:15", "UTC")
    slots = [PriceInterval(t - 900, t + 2700, 120.0), PriceInterval(t, t + 60, 10.0)]
    assert tariff.price_at(t, slots) == 10.0  # the later given wins where they overlap
    assert tariff.price_at(t + 61, slots) == 120.0
    assert tariff.price_at(t + 2700, slots) == 60.0  # end is exclusive


def test_an_energy_award_in_force_is_prepaid_energy_nothing_sleeps_for_price() -> None:
    price = breakeven_price(S21) * 3  # everything would lose money at this price
    d = decide(
        rates=rates(price), hashprice_fresh=True, use_every_kw=False, last=None, prepaid=True
    )
    assert d.state is EconomicsState.PREPAID and d.max_j_per_th is None
    assert d.breakeven_j_per_th == pytest.approx(breakeven_j_per_th(rates(price)))
    # Without a hashprice yet it is still prepaid, not "off".
    d = decide(rates=None, hashprice_fresh=False, use_every_kw=False, last=None, prepaid=True)
    assert d.state is EconomicsState.PREPAID and d.breakeven_j_per_th is None


def test_worth_running_compares_each_step_with_the_last_point_kept() -> None:
    pts = (
        OpPoint(1000.0, 50.0, "a"),  # 20 J/TH
        OpPoint(1300.0, 60.0, "b"),  # +300 W for +10 TH/s: 30 at the margin
        OpPoint(1400.0, 58.0, "c"),  # less hashrate for more power: never worth it
        OpPoint(1500.0, 70.0, "d"),  # +500 W for +20 TH/s over "a": 25 at the margin
        OpPoint(2000.0, 75.0, "e"),  # 26.7 J/TH on average: too costly on its own
    )
    assert [p.profile for p in worth_running(pts, 25.0)] == ["a", "d"]
    assert [p.profile for p in worth_running(pts, 19.0)] == []
    assert [p.profile for p in worth_running(pts, 100.0)] == ["a", "b", "d", "e"]
