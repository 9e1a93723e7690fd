"""A split site under a regional coordinator: the site controller (with [region]) offers
its shards' curves merged, obeys its allocation as a limit (origin "region") and splits it
over its shards; with the coordinator gone it falls, at the lease's end, to the site's
fail-safe limit. Real nats-server, simulated site, in-process daemons on the sim clock."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
from servers import ServerProcess, free_port

from minerd.control.region_lease import REASON_EXPIRED
from minerd.daemon.app import Daemon
from minerd.daemon.coordinator import CoordinatorService
from minerd.runtime.cycle import CycleResult
from minerd.settings import settings_from_dict
from minerd.settings.region import load_region_config
from minerd.sim import RigGroupSpec, SimSite, SiteSpec

pytestmark = pytest.mark.timeout(280)

OCTET = 189  # containers 189, 190
RIGS = 12
SPEED = 4.0
WAIT_S = 150.0  # a bound that turns a hang into a failure, never a measured duration
SHARDS = ("s1", "s2")


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(30):
            await task


async def until(tasks: dict[str, asyncio.Task[None]], pred: Any, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not pred():
                for name, t in tasks.items():
                    if t.done() and not t.cancelled():
                        raise AssertionError(f"{name} stopped: {t.exception()!r}")
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {WAIT_S:g} s: {what}") from None


@pytest.mark.asyncio
async def test_a_split_site_controller_obeys_its_allocation_then_its_failsafe(
    nats_server: ServerProcess, tmp_path: Path
) -> None:
    region = f"r{uuid.uuid4().hex[:8]}"
    spec = SiteSpec(
        groups=(RigGroupSpec("bitmain-s19jpro", RIGS),),
        name="split-site",
        rigs_per_container=RIGS // 2,
        rig_port=0,
        base_octet=OCTET,
        speed=SPEED,
        workers=1,
        feeder_meters=False,
    )
    tasks: dict[str, asyncio.Task[None]] = {}
    async with SimSite(spec) as sim:
        sim.write_config(tmp_path / "site.toml")
        base = tomllib.loads((tmp_path / "site.toml").read_text())
        common = {"nats_url": nats_server.url, "shards": list(SHARDS), "site": "split-site"}
        daemons: dict[str, Daemon] = {}
        results: list[CycleResult] = []
        service: CoordinatorService | None = None
        try:
            for name in (*SHARDS, "controller"):
                raw = dict(base)
                raw["rigs"] = [{**g, "interval_s": 2.0, "timeout_s": 1.0} for g in base["rigs"]]
                raw["api"] = {**base["api"], "listen": f"127.0.0.1:{free_port()}"}
                raw["storage"] = {"path": f"{name}.sqlite"}
                if name == "controller":
                    raw["cluster"] = {**common, "role": "controller"}
                    raw["region"] = {
                        "name": region,
                        "nats_url": nats_server.url,
                        "offer_interval_s": 2.0,
                    }
                else:
                    raw["cluster"] = {**common, "role": "shard", "shard_id": name}
                daemon = Daemon(settings_from_dict(raw, base_dir=tmp_path), clock=sim.clock)
                daemon.build()
                daemons[name] = daemon
                tasks[name] = asyncio.create_task(daemon.run(), name=name)
            ctl = daemons["controller"]
            assert ctl.site is not None and ctl.region is not None and ctl.cluster is not None
            ctl.site.cycle.listeners.append(results.append)
            contract_kw = ctl.settings.grid.contracted_limit_kw
            failsafe_kw = ctl.settings.grid.failsafe_limit_kw
            # A regional limit between the site's fail-safe and contract: its allocation.
            limit_kw = round((failsafe_kw + contract_kw) / 2, 1)
            config = tmp_path / "region.toml"
            config.write_text(
                f'[region]\nname = "{region}"\nnats_url = "{nats_server.url}"\n'
                f"limit_kw = {limit_kw}\n\n[coordinator]\ninterval_s = 2.0\nlease_s = 20\n"
                'site_silent_s = 6.0\nleader_ttl_s = 3.0\naudit_db = "region.sqlite"\n'
                'control_token_env = "T"\n'
            )
            service = CoordinatorService(load_region_config(config, environ={"T": "x"}), sim.clock)
            tasks["coordinator"] = asyncio.create_task(service.run(), name="coordinator")
            lease = ctl.region.lease
            node = ctl.cluster.controller
            assert node is not None

            def obeys() -> bool:
                last = service.node.last if service is not None else None
                return (
                    last is not None
                    and "split-site" in last.allocations
                    and abs(last.allocations["split-site"] - last.targets["split-site"]) < 1.0
                    and any(
                        r.decision.limit.origin == "region" and r.plan is not None
                        for r in results[-3:]
                    )
                    and node.last is not None
                    and len(node.last.live_shards) == 2
                )

            await until(tasks, obeys, "the controller obeys its allocation, both shards live")
            offered = service.node.sites()["split-site"]
            # The shards' curves merged (test_region_pure: merged_curve); rigs inside their
            # min-on/off windows are fixed load there, so the curve's shape varies with time.
            assert offered.curve.max_w >= offered.curve.floor_w > 0
            assert offered.max_import_w == pytest.approx(contract_kw * 1000.0)
            assert offered.failsafe_w == pytest.approx(failsafe_kw * 1000.0)
            alloc_kw = lease.allocation_kw(sim.clock.now_s())
            assert alloc_kw is not None and alloc_kw <= limit_kw + 1e-6
            r = next(r for r in reversed(results) if r.decision.limit.origin == "region")
            assert r.decision.limit.limit_kw == pytest.approx(alloc_kw)
            # The shards' budgets sum to no more than the rig budget the allocation allows.
            assert node.last is not None and node.last.split is not None
            assert sum(s.budget_w for s in node.last.split.shares.values()) <= (
                max(x.decision.rig_budget_w for x in results[-5:]) + 1.0
            )

            # The coordinator gone: the allocation holds to the lease's end, then fail-safe.
            await stop_task(tasks.pop("coordinator"))
            service.close()
            service = None
            await asyncio.sleep(0.5)
            expires_s = lease.expires_at_s
            mark = len(results)
            await until(
                tasks,
                lambda: any(x.snapshot.taken_at_s >= expires_s + 3.0 for x in results[mark:]),
                "the controller cycles past the lease",
            )
            after = results[mark:]
            assert all(
                x.decision.limit.origin == "region"
                for x in after
                if x.snapshot.taken_at_s < expires_s
            )
            past = [x for x in after if x.snapshot.taken_at_s >= expires_s]
            assert past
            for x in past:
                assert x.failsafe_reason.startswith(REASON_EXPIRED)
                assert x.decision.limit.origin == "failsafe"
                assert x.decision.limit.limit_kw == pytest.approx(failsafe_kw)
        finally:
            if "coordinator" in tasks:
                await stop_task(tasks.pop("coordinator"))
            if service is not None:
                service.close()
            for t in tasks.values():
                if not t.done():
                    await stop_task(t)
