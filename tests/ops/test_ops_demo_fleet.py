"""`make demo` runs a mixed fleet by default: every firmware family minerd drives, plus a few
read-only cgminer rigs, in a real site's proportions (issue 13)."""

from __future__ import annotations

import pytest

from minerd.cli.demo import spec_for
from minerd.model import RigProtocol


def counts(rigs: int, fleet: str | None = None) -> dict[RigProtocol, int]:
    out: dict[RigProtocol, int] = {}
    for g in spec_for(rigs, 1.0, fleet).groups:
        out[g.protocol] = out.get(g.protocol, 0) + g.count
    return out


@pytest.mark.parametrize("rigs", [6, 60, 1000])
def test_default_demo_has_every_family(rigs: int) -> None:
    got = counts(rigs)
    assert sum(got.values()) == rigs
    wanted = {
        RigProtocol.STOCK,
        RigProtocol.LUXOS,
        RigProtocol.VNISH,
        RigProtocol.WHATSMINER,
        RigProtocol.BRAIINS,
        RigProtocol.CGMINER,
    }
    assert set(got) == wanted
    assert max(got, key=lambda f: got[f]) is RigProtocol.STOCK  # the field's most common
    assert got[RigProtocol.CGMINER] <= max(1, rigs // 20)  # read only: the small rest


def test_demo_fleet_option_replaces_the_mix() -> None:
    assert counts(60, "luxos:3,cgminer:2") == {RigProtocol.LUXOS: 3, RigProtocol.CGMINER: 2}
    with pytest.raises(ValueError, match="unknown family"):
        spec_for(60, 1.0, "antminer:3")


def test_family_servers_listen_on_fixed_unprivileged_ports() -> None:
    """The written config names one family port per group, so they cannot be ephemeral."""
    spec = spec_for(60, 1.0)
    assert spec.rig_port == 0
    for port in (spec.web_port, spec.whatsminer_api_port, spec.grpc_port):
        assert 1024 < port < 65536
