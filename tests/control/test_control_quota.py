"""Quota selection: most recently issued wins, expiry falls back to the contract, caps."""

from __future__ import annotations

import pytest

from minerd.control.quota import effective_limit, limit_timeline, winning_quota
from minerd.model import EffectiveLimit, Quota, QuotaSource


def q(
    qid: str,
    limit_kw: float,
    start_s: float,
    end_s: float | None,
    issued_at_s: float,
    source: QuotaSource = QuotaSource.API,
    withdrawn_at_s: float | None = None,
) -> Quota:
    return Quota(qid, limit_kw, start_s, end_s, source, issued_at_s, "grid", None, withdrawn_at_s)


QUOTAS = [
    q("day-ahead", 800.0, 0.0, 1000.0, issued_at_s=-500.0, source=QuotaSource.SCHEDULE),
    q("cut", 300.0, 100.0, 200.0, issued_at_s=90.0),
    # Issued later, covers part of "cut": the newer order wins even though it is higher.
    q("relax", 600.0, 150.0, 400.0, issued_at_s=140.0, source=QuotaSource.MQTT),
    q("withdrawn", 100.0, 500.0, 700.0, issued_at_s=450.0, withdrawn_at_s=550.0),
    q("config-not-grid", 10.0, 0.0, None, issued_at_s=1e9, source=QuotaSource.CONFIG),
]


@pytest.mark.parametrize(
    ("t_s", "cap_kw", "expected"),
    [
        (50.0, None, EffectiveLimit(800.0, "quota", "day-ahead")),
        (120.0, None, EffectiveLimit(300.0, "quota", "cut")),
        (160.0, None, EffectiveLimit(600.0, "quota", "relax")),  # most recently issued wins
        (450.0, None, EffectiveLimit(800.0, "quota", "day-ahead")),
        (520.0, None, EffectiveLimit(100.0, "quota", "withdrawn")),  # before withdrawal
        (560.0, None, EffectiveLimit(800.0, "quota", "day-ahead")),  # withdrawn
        (1000.0, None, EffectiveLimit(1000.0, "contracted", None)),  # expired: contract
        (2000.0, 700.0, EffectiveLimit(700.0, "operator-cap", None)),
        (160.0, 500.0, EffectiveLimit(500.0, "operator-cap", None)),
        (120.0, 500.0, EffectiveLimit(300.0, "quota", "cut")),
    ],
)
def test_effective_limit_rules(t_s: float, cap_kw: float | None, expected: EffectiveLimit) -> None:
    got = effective_limit(QUOTAS, t_s, contracted_limit_kw=1000.0, operator_cap_kw=cap_kw)
    assert got == expected


def test_quota_above_contract_is_capped_by_contract() -> None:
    quotas = [q("big", 5000.0, 0.0, None, issued_at_s=0.0)]
    assert effective_limit(quotas, 10.0, contracted_limit_kw=1000.0) == EffectiveLimit(
        1000.0, "contracted", None
    )


def test_issue_time_tie_breaks_on_larger_quota_id() -> None:
    quotas = [q("b", 400.0, 0.0, None, 5.0), q("a", 200.0, 0.0, None, 5.0)]
    assert winning_quota(quotas, 1.0) == quotas[0]
    assert winning_quota(list(reversed(quotas)), 1.0) == quotas[0]


def test_failsafe_caps_and_names_origin() -> None:
    got = effective_limit(
        QUOTAS, 50.0, contracted_limit_kw=1000.0, failsafe=True, failsafe_limit_kw=250.0
    )
    assert got == EffectiveLimit(250.0, "failsafe", "day-ahead")
    lower = effective_limit(
        QUOTAS, 120.0, contracted_limit_kw=1000.0, failsafe=True, failsafe_limit_kw=500.0
    )
    assert lower == EffectiveLimit(300.0, "failsafe", "cut")


def test_no_quota_is_never_unlimited() -> None:
    got = effective_limit([], 0.0, contracted_limit_kw=1200.0)
    assert got == EffectiveLimit(1200.0, "contracted", None)


def test_timeline_steps() -> None:
    steps = limit_timeline(QUOTAS, 0.0, 1200.0, contracted_limit_kw=1000.0)
    assert [(a, b, lim.limit_kw, lim.quota_id) for a, b, lim in steps] == [
        (0.0, 100.0, 800.0, "day-ahead"),
        (100.0, 150.0, 300.0, "cut"),
        (150.0, 400.0, 600.0, "relax"),
        (400.0, 500.0, 800.0, "day-ahead"),
        (500.0, 550.0, 100.0, "withdrawn"),
        (550.0, 1000.0, 800.0, "day-ahead"),
        (1000.0, 1200.0, 1000.0, None),
    ]
    # Every point of the timeline agrees with the point function.
    for a, b, lim in steps:
        for t in (a, (a + b) / 2):
            assert effective_limit(QUOTAS, t, contracted_limit_kw=1000.0) == lim
    assert limit_timeline(QUOTAS, 10.0, 10.0, contracted_limit_kw=1000.0) == []
