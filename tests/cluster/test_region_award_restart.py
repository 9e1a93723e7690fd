"""A restarted coordinator (`minerd coordinator`'s CoordinatorService over the same audit
file) takes its regional awards and their splits back from its audit log: a running
interval keeps the parts its sites already have, a revision keeps its rescaled parts, a
re-give keeps its revised parts and the site that gave, and an unreadable entry is logged
and skipped. No NATS: the service connects only in run()."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from minerd.clock import ManualClock
from minerd.cluster.coordinator import ACTION_AWARD_REGIVE, ACTION_AWARD_SET, Round
from minerd.cluster.region_regive import SentAllocation, SilentSite, regive
from minerd.daemon.coordinator import CoordinatorService
from minerd.settings.region import load_region_config

T0 = 1_800_000_000.0
HOUR_S = 3600.0

REGION_TOML = """
[region]
name = "alatau"
nats_url = "nats://127.0.0.1:1"
limit_kw = 90

[coordinator]
id = "coord-a"
site_silent_s = 6
audit_db = "region-audit.sqlite"
control_token_env = "REGION_TOKEN"
"""


def service(tmp_path: Path, clock: ManualClock) -> CoordinatorService:
    path = tmp_path / "region.toml"
    path.write_text(REGION_TOML)
    return CoordinatorService(load_region_config(path, environ={"REGION_TOKEN": "t0k"}), clock)


def ask(svc: CoordinatorService, items: list[dict[str, object]]) -> None:
    body = {"awards": items, "actor": "korem-desk", "token": "t0k"}
    answer = svc.node.set_awards_request(json.dumps(body).encode())
    assert answer["ok"] is True, answer


def test_a_restarted_coordinator_keeps_its_awards_and_the_running_intervals_parts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    first = service(tmp_path, clock)
    ask(
        first,
        [
            {"id": "k-1", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 40.0},
            {"id": "k-2", "start_s": T0 + HOUR_S, "end_s": T0 + 2 * HOUR_S, "energy_kwh": 9.0},
        ],
    )
    clock.advance(10.0)  # past site_silent_s: the running interval is split
    # Two silent sites, set aside what they may draw over the hour (30 and 10 kWh).
    silent = Round({}, {}, 0.0, 90_000.0, {"eff": 30_000.0, "old": 10_000.0})
    first.node._split_awards(silent, clock.now_s(), 3)
    assert first.node.award_splits["k-1"] == pytest.approx({"eff": 30.0, "old": 10.0})
    clock.advance(60.0)
    ask(first, [{"id": "k-1b", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 20.0}])
    now = clock.now_s()
    before = {s: first.node.site_awards(s, now) for s in ("eff", "old")}
    assert [w.energy_kwh for w in before["eff"]] == pytest.approx([15.0])
    # Something unreadable in the log is skipped, not fatal.
    first.audit_log.record(now, "x", ACTION_AWARD_SET, "", json.dumps({"awards": [{"id": 1}]}))
    first.close()

    clock.advance(30.0)  # down 30 s, mid-interval
    caplog.set_level(logging.WARNING, logger="minerd.cluster.coordinator")
    second = service(tmp_path, clock)
    try:
        node = second.node
        assert set(node.awards_in_force) == {"k-1b", "k-2"}
        assert node.awards_in_force["k-1b"].issued_by == "korem-desk"
        assert node.award_splits["k-1b"] == pytest.approx({"eff": 15.0, "old": 5.0})
        assert "k-2" not in node.award_splits  # split at its own start, as before
        after = {s: node.site_awards(s, clock.now_s()) for s in ("eff", "old")}
        assert after == before  # the same parts, the same ids: replays at the sites
        assert "unreadable" in caplog.text and "restored" in caplog.text
        # A fresh (young) coordinator does not re-split what it restored.
        node._split_awards(Round({}, {"eff": 1.0}, 0.0, 90_000.0), clock.now_s(), 4)
        assert node.award_splits["k-1b"] == pytest.approx({"eff": 15.0, "old": 5.0})
    finally:
        second.close()


def test_awards_long_over_are_not_taken_back(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    first = service(tmp_path, clock)
    ask(first, [{"id": "k-old", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 5.0}])
    first.close()
    clock.advance(3 * 86_400.0)
    second = service(tmp_path, clock)
    try:
        assert second.node.awards == {} and second.node.awards_in_force == {}
    finally:
        second.close()


def test_a_restarted_coordinator_keeps_a_re_given_split_and_the_site_that_gave(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    first = service(tmp_path, clock)
    ask(first, [{"id": "k-3", "start_s": T0, "end_s": T0 + HOUR_S, "energy_kwh": 40.0}])
    clock.advance(10.0)
    silent = Round({}, {}, 0.0, 90_000.0, {"eff": 30_000.0, "old": 10_000.0})
    first.node._split_awards(silent, clock.now_s(), 3)  # 30 and 10 kWh
    split = first.node.award_splits["k-3"]
    clock.advance(600.0)
    quiet = SilentSite(2_000.0, (SentAllocation(T0 + 5.0, 30.0, 20_000.0),))
    got = regive(
        T0, T0 + HOUR_S, clock.now_s(), split, {"old": quiet}, {"eff": 80_000.0},
        {"eff": 90_000.0}, slack_s=10.0, history_from_s=T0 - 60.0, longest_lease_s=30.0,
    )  # fmt: skip
    assert got.gifts
    first.node._audit(ACTION_AWARD_REGIVE, "", {"award_id": "k-3", **got.audit_detail()})
    first.close()

    clock.advance(30.0)
    second = service(tmp_path, clock)
    try:
        assert second.node.award_splits["k-3"] == pytest.approx(got.parts_kwh)
        assert second.node.award_donors["k-3"] == {"old": 2_000.0}
    finally:
        second.close()
