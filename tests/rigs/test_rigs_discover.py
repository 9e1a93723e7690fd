"""`minerd discover` finds simulated rigs on loopback addresses and writes an inventory."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from servers import free_port
from sim_fleet import start_on_free_ports

from minerd.cli.discover import ScanProgress, add_arguments, run, scan
from minerd.clock import ManualClock
from minerd.devices.inventory import read_inventory_csv
from minerd.model import RigProtocol
from minerd.sim.fleet import RigFleet
from minerd.sim.spec import RigGroupSpec, SiteSpec, plan_rigs


@pytest_asyncio.fixture
async def fleet() -> AsyncIterator[tuple[RigFleet, int]]:
    def build(port: int) -> RigFleet:
        spec = SiteSpec(
            groups=(
                RigGroupSpec("bitmain-s19jpro", 2, RigProtocol.LUXOS),
                RigGroupSpec("bitmain-s19jpro", 1, RigProtocol.CGMINER),
            ),
            rig_port=port,
            base_octet=91,
        )
        return RigFleet(plan_rigs(spec), ManualClock())

    f, port = await start_on_free_ports(free_port, build)
    try:
        yield f, port
    finally:
        await f.close()


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.asyncio
async def test_scan_finds_rigs_with_model_hints(fleet: tuple[RigFleet, int]) -> None:
    _f, port = fleet
    seen: list[ScanProgress] = []
    rows = await scan(
        [f"127.91.0.{i}" for i in range(1, 9)],
        port,
        timeout_s=0.5,
        concurrency=4,
        container="c001",
        progress=seen.append,
    )
    assert [r.host for r in rows] == ["127.91.0.1", "127.91.0.2", "127.91.0.3"]
    assert rows[0].id == f"127.91.0.1:{port}" and rows[0].container == "c001"
    assert rows[0].model_hint == "Antminer S19j Pro / LUXminer"  # Type as firmware sends it
    assert rows[2].model_hint == "Antminer S19j Pro / CGMiner"
    assert seen[-1].done == 8 and seen[-1].found == 3


@pytest.mark.asyncio
async def test_run_writes_csv_and_reports_progress(
    fleet: tuple[RigFleet, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _f, port = fleet
    out = tmp_path / "inv.csv"
    args = _args("127.91.0.0/29", "--port", str(port), "--timeout", "0.5", "-o", str(out))
    code = await asyncio.to_thread(run, args)
    assert code == 0
    rows = read_inventory_csv(out)
    assert [r.host for r in rows] == ["127.91.0.1", "127.91.0.2", "127.91.0.3"]
    err = capsys.readouterr().err
    assert "scanned 6/6, found 3 rigs" in err and f"wrote 3 rigs to {out}" in err


@pytest.mark.asyncio
async def test_run_nothing_found_and_bad_cidr(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = await asyncio.to_thread(run, _args("127.92.0.1-3", "--port", str(port), "-q"))
    assert code == 1
    assert capsys.readouterr().out == "id,host,port,container,model_hint\n"
    assert await asyncio.to_thread(run, _args("127.92.0.1/33")) == 2
    assert "invalid CIDR" in capsys.readouterr().err
