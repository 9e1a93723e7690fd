"""What the simulated site says is true (GET /truth on its control endpoint), for tests that
drive a simulated rig with another client (pyasic) and check the rig itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from minerd.sim import SimSite

WAIT_WALL_S = 30.0  # generous bound for a ramp on a loaded machine (no timing is asserted)

Truth = dict[str, Any]


async def site_truth(site: SimSite) -> dict[str, Truth]:
    """Every rig's truth by rig id."""
    async with httpx.AsyncClient(base_url=site.control_url, timeout=10.0) as http:
        reply = await http.get("/truth")
    reply.raise_for_status()
    return {r["id"]: r for r in reply.json()["rigs"]}


async def rig_truth(site: SimSite, rig_id: str) -> Truth:
    return (await site_truth(site))[rig_id]


async def until_truth(
    site: SimSite,
    rig_id: str,
    ok: Callable[[Truth], bool],
    what: str = "the awaited state",
    wait_s: float = WAIT_WALL_S,
) -> Truth:
    """The rig's truth once ok(truth) holds; the bound only turns a hang into a failure."""
    last: Truth = {}
    try:
        async with asyncio.timeout(wait_s):
            while True:
                last = await rig_truth(site, rig_id)
                if ok(last):
                    return last
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"{rig_id} never reached {what} within {wait_s:g} s: {last}") from None
