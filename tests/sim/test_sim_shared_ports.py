"""A fleet whose shared port was taken between picking and binding is started on new ports
(tests/sim_fleet.start_on_free_ports: the suite runs in parallel processes)."""

from __future__ import annotations

import socket

import pytest
from servers import free_port
from sim_fleet import start_on_free_ports

from minerd.clock import ManualClock
from minerd.model import RigProtocol
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs

OCTET = 249  # 127.249.x.y: this module's rigs


def _fleet(port: int) -> RigFleet:
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS),),
        rig_port=port,
        base_octet=OCTET,
        workers=1,
    )
    return RigFleet(plan_rigs(spec), ManualClock())


@pytest.mark.asyncio
async def test_a_port_taken_on_a_rigs_address_is_picked_again() -> None:
    host = plan_rigs(
        SiteSpec(groups=(RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS),), base_octet=OCTET)
    )[1].host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((host, 0))  # the second rig's address, as another process would
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        picks = iter([taken, free_port()])
        fleet, port = await start_on_free_ports(lambda: next(picks), _fleet)
        try:
            assert port != taken
            assert {fleet.port_of(rig) for rig in fleet.rigs.values()} == {port}
        finally:
            await fleet.close()


@pytest.mark.asyncio
async def test_a_port_that_stays_taken_fails_with_the_bind_error() -> None:
    host = plan_rigs(
        SiteSpec(groups=(RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS),), base_octet=OCTET)
    )[0].host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((host, 0))
        squatter.listen()
        taken = int(squatter.getsockname()[1])
        with pytest.raises(OSError):
            await start_on_free_ports(lambda: taken, _fleet)
