"""Re-giving a silent site's unusable award energy within the interval, pure: the bound on
what it can use (allocations until its last lease ends, then its fail-safe limit), nothing
before that expiry, the gifts to fresh sites within their limits, the lowered part it finds
when it comes back, and a total that never grows."""

from __future__ import annotations

import json
import random

import pytest

from minerd.cluster.region_regive import (
    Regive,
    SentAllocation,
    SilentSite,
    merge_donors,
    regive,
    use_bound,
)

T0 = 1_800_000_000.0
END = T0 + 3600.0
LEASE_S = 30.0
KW = 1000.0


def quiet(*sent: tuple[float, float], failsafe_kw: float = 10.0) -> SilentSite:
    """A silent site: its fail-safe limit and its (issued at T0 + s, kW) allocations."""
    return SilentSite(
        failsafe_kw * KW,
        tuple(SentAllocation(T0 + t, LEASE_S, kw * KW) for t, kw in sent),
    )


def give(
    parts: dict[str, float],
    silent: dict[str, SilentSite],
    now_s: float,
    *,
    max_kw: float = 100.0,
    slack_s: float = 0.0,
    history_from_s: float = T0 - 3600.0,
) -> Regive:
    fresh = {s: 50.0 * KW for s in parts if s not in silent}
    return regive(
        T0,
        END,
        now_s,
        parts,
        silent,
        fresh,
        dict.fromkeys(fresh, max_kw * KW),
        slack_s=slack_s,
        history_from_s=history_from_s,
        longest_lease_s=LEASE_S,
    )


# ---------------------------------------------------------------- the bound


def test_the_bound_counts_each_allocation_over_its_whole_lease_then_the_failsafe_limit() -> None:
    # 60 kW sent before the interval, 20 kW at +10 s, then silence: the 60 kW lease runs to
    # +20 s (the site may not have got the lower one), the 20 kW one to +40 s.
    site = quiet((-10.0, 60.0), (10.0, 20.0))
    b = use_bound(T0, END, 50.0, site, slack_s=0.0)
    assert b.expiry_s == T0 + 40.0
    assert b.failsafe_w == 10.0 * KW
    assert b.allocations_kwh == pytest.approx((60.0 * 20.0 + 20.0 * 20.0) / 3600.0)
    assert b.failsafe_kwh == pytest.approx(10.0 * 3560.0 / 3600.0)
    assert b.bound_kwh == pytest.approx(b.allocations_kwh + b.failsafe_kwh)
    assert b.unusable_kwh == pytest.approx(50.0 - b.bound_kwh)
    # The clock slack stretches every lease: more energy, a later expiry.
    slack = use_bound(T0, END, 50.0, site, slack_s=5.0)
    assert slack.expiry_s == T0 + 45.0
    assert slack.allocations_kwh == pytest.approx((60.0 * 25.0 + 20.0 * 20.0) / 3600.0)
    assert slack.bound_kwh > b.bound_kwh


def test_an_allocation_below_the_failsafe_limit_counts_at_the_failsafe_limit() -> None:
    b = use_bound(T0, END, 50.0, quiet((0.0, 2.0), failsafe_kw=10.0), slack_s=0.0)
    assert b.allocations_kwh == pytest.approx(10.0 * LEASE_S / 3600.0)
    assert b.bound_kwh == pytest.approx(10.0)  # the fail-safe limit all hour


def test_a_site_that_never_had_an_allocation_in_the_interval_is_bounded_by_its_failsafe() -> None:
    b = use_bound(T0, END, 50.0, quiet((-100.0, 90.0)), slack_s=0.0)  # ended before T0
    assert (b.expiry_s, b.allocations_kwh) == (T0, 0.0)
    assert b.bound_kwh == pytest.approx(10.0)


# ---------------------------------------------------------------- the re-give


def test_nothing_is_re_given_before_the_silent_sites_lease_has_expired() -> None:
    parts = {"quiet": 50.0, "busy": 30.0}
    silent = {"quiet": quiet((-10.0, 60.0), (10.0, 20.0))}
    before = give(parts, silent, T0 + 44.0, slack_s=5.0)  # its lease + slack end at +45 s
    assert before.gifts == () and before.parts_kwh == parts
    at = give(parts, silent, T0 + 45.0, slack_s=5.0)
    assert at.gifts != ()


def test_the_unusable_energy_goes_to_the_fresh_site_and_the_silent_part_falls_to_the_bound() -> (
    None
):
    parts = {"quiet": 50.0, "busy": 30.0}
    silent = {"quiet": quiet((-10.0, 60.0), (10.0, 20.0))}
    r = give(parts, silent, T0 + 600.0)
    bound = r.bounds["quiet"].bound_kwh
    assert r.parts_kwh["quiet"] == pytest.approx(bound)
    assert r.parts_kwh["busy"] == pytest.approx(30.0 + 50.0 - bound)
    assert sum(r.parts_kwh.values()) <= 80.0
    assert [(g.from_site, g.to_site) for g in r.gifts] == [("quiet", "busy")]
    assert r.gifts[0].kwh == pytest.approx(50.0 - bound)
    # Again with the revised parts: nothing more to give (its part is its bound now).
    history = silent["quiet"].sent
    again = give(r.parts_kwh, {"quiet": SilentSite(10.0 * KW, history)}, T0 + 900.0)
    assert again.gifts == ()


def test_a_fresh_site_takes_only_what_its_limit_lets_it_use_and_the_rest_stays_put() -> None:
    parts = {"quiet": 40.0, "busy": 5.0}
    silent = {"quiet": quiet()}  # bound: 10 kWh of fail-safe limit
    r = give(parts, silent, T0 + 1800.0, max_kw=20.0)  # busy: 20 kW for the last half hour
    assert r.parts_kwh["busy"] == pytest.approx(5.0 + 10.0)
    assert r.parts_kwh["quiet"] == pytest.approx(40.0 - 10.0)  # only what was given
    assert r.parts_kwh["quiet"] >= r.bounds["quiet"].bound_kwh
    assert sum(r.parts_kwh.values()) == pytest.approx(45.0)


def test_a_silent_site_back_within_the_interval_keeps_its_lowered_part() -> None:
    parts = {"quiet": 50.0, "busy": 30.0}
    r = give(parts, {"quiet": quiet((0.0, 40.0))}, T0 + 600.0)
    lowered = r.parts_kwh["quiet"]
    assert lowered < 50.0
    # Back: it is fresh again, nobody is silent: nothing moves, its part stays lowered.
    back = give(r.parts_kwh, {}, T0 + 1200.0)
    assert back.parts_kwh == r.parts_kwh
    assert back.parts_kwh["quiet"] == lowered


def test_a_history_that_may_miss_an_allocation_re_gives_nothing() -> None:
    parts = {"quiet": 50.0, "busy": 30.0}
    silent = {"quiet": quiet()}
    # Recorded only since 20 s before the start: a 30 s lease sent before may reach into it.
    r = give(parts, silent, T0 + 600.0, history_from_s=T0 - 20.0)
    assert r.gifts == () and r.parts_kwh == parts
    assert give(parts, silent, T0 + 600.0, history_from_s=T0 - LEASE_S).gifts != ()


def test_a_site_that_can_use_its_whole_part_gives_nothing() -> None:
    parts = {"quiet": 5.0, "busy": 30.0}
    r = give(parts, {"quiet": quiet((0.0, 90.0))}, T0 + 600.0)
    assert r.gifts == () and r.parts_kwh == parts


def test_the_same_history_gives_the_same_re_give_and_its_audit_reads_back() -> None:
    parts = {"q1": 30.0, "q2": 20.0, "a": 10.0, "b": 10.0}
    silent = {"q1": quiet((0.0, 30.0)), "q2": quiet(failsafe_kw=2.0)}
    first = give(parts, silent, T0 + 700.0)
    second = give(dict(reversed(parts.items())), dict(reversed(silent.items())), T0 + 700.0)
    assert first == second  # a restarted or standby coordinator with the same history
    detail = json.loads(json.dumps(first.audit_detail()))
    assert detail["sites_kwh"] == first.parts_kwh
    given = sum(g["kwh"] for g in detail["gifts"])
    assert given == pytest.approx(
        sum(parts.values()) - parts["a"] - parts["b"] - sum(first.parts_kwh[s] for s in silent)
    )
    assert set(detail["bounds"]) == {"q1", "q2"}


def test_random_histories_never_grow_the_total_nor_lower_a_part_below_its_bound() -> None:
    rng = random.Random(16)
    for _ in range(400):
        sites = [f"s{i}" for i in range(rng.randint(2, 6))]
        award_kwh = rng.uniform(0.0, 300.0)
        weights = {s: rng.random() for s in sites}
        total = sum(weights.values())
        parts = {s: award_kwh * w / total for s, w in weights.items()}
        silent = {
            s: SilentSite(
                rng.uniform(0.0, 30.0) * KW,
                tuple(
                    SentAllocation(
                        T0 + rng.uniform(-60.0, 900.0),
                        rng.uniform(5.0, LEASE_S),
                        rng.uniform(0, 99) * KW,
                    )
                    for _ in range(rng.randint(0, 5))
                ),
            )
            for s in sites
            if rng.random() < 0.5
        }
        now_s = T0 + rng.uniform(0.0, 3599.0)
        r = give(parts, silent, now_s, max_kw=rng.uniform(0.0, 200.0), slack_s=rng.uniform(0, 9))
        assert sum(r.parts_kwh.values()) <= award_kwh + 1e-9
        for s, b in r.bounds.items():
            assert now_s >= b.expiry_s
            assert b.bound_kwh - 1e-9 <= r.parts_kwh[s] <= parts[s]
        for s in sites:
            if s not in silent:
                assert r.parts_kwh[s] >= parts[s]
        gave = sum(g.kwh for g in r.gifts)
        assert gave == pytest.approx(sum(parts[s] - r.parts_kwh[s] for s in silent), abs=1e-6)


def test_a_site_that_gave_twice_is_held_at_the_lower_failsafe_limit_either_counted() -> None:
    assert merge_donors({"q": 9.0 * KW}, {"q": 7.0 * KW, "r": 3.0 * KW}, {}) == {
        "q": 7.0 * KW,
        "r": 3.0 * KW,
    }
