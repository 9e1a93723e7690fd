"""The commandable share of a fleet: rigs whose driver can command them against read-only
plain cgminer rigs, by the family-adjusted model the planner sees (issue 13)."""

from __future__ import annotations

from minerd.model import RigProtocol, RigReading, RigState, RigStatus
from minerd.profiles import load_rig_model
from minerd.runtime.commandable import commandable

S19 = load_rig_model("bitmain-s19jpro")
M50S = load_rig_model("microbt-m50s")


def status(rig_id: str, family: RigProtocol, power_w: float) -> RigStatus:
    reading = RigReading(rig_id, 10.0, RigState.HASHING, "", power_w=power_w)
    return RigStatus(rig_id, "x", "c001", "127.0.0.1", 4028, family, reading, fresh=True)


def test_plain_cgminer_has_no_control_modes_for_the_planner() -> None:
    assert S19.for_family(RigProtocol.CGMINER).modes == frozenset()
    assert S19.for_family(RigProtocol.LUXOS).modes == S19.modes
    for family in (RigProtocol.STOCK, RigProtocol.VNISH, RigProtocol.BRAIINS):
        assert S19.for_family(family).modes, family
    assert M50S.for_family(RigProtocol.WHATSMINER).modes


def test_read_only_rigs_are_the_rest_of_the_fleet() -> None:
    families = {
        "a": (RigProtocol.LUXOS, S19, 3000.0),
        "b": (RigProtocol.STOCK, S19, 2000.0),
        "c": (RigProtocol.WHATSMINER, M50S, 3200.0),
        "d": (RigProtocol.CGMINER, S19, 3100.0),
    }
    statuses = [status(rid, fam, w) for rid, (fam, _, w) in families.items()]
    models = {rid: m.for_family(fam) for rid, (fam, m, _) in families.items()}
    got = commandable(statuses, models)
    assert got.power_w == 3000.0 + 2000.0 + 3200.0
    assert got.nominal_w == 2 * S19.nominal_power_w + M50S.nominal_power_w
    assert got.fleet_nominal_w == 3 * S19.nominal_power_w + M50S.nominal_power_w
    assert got.share == got.nominal_w / got.fleet_nominal_w
    assert 0.7 < got.share < 0.8


def test_an_all_read_only_fleet_has_nothing_commandable() -> None:
    models = {"d": S19.for_family(RigProtocol.CGMINER)}
    got = commandable([status("d", RigProtocol.CGMINER, 3100.0)], models)
    assert (got.power_w, got.nominal_w, got.share) == (0.0, 0.0, 0.0)
    assert commandable([], {}).share == 1.0
