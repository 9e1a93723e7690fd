"""The device time limit shared by the rig clients: a timeout names device, endpoint and
limit; anything else passes through unchanged."""

from __future__ import annotations

import asyncio

import pytest

from minerd.errors import DeviceTimeout, DeviceUnreachable
from minerd.transports.deadline import device_deadline


@pytest.mark.asyncio
async def test_a_timeout_is_a_device_timeout_naming_where_and_how_long() -> None:
    with pytest.raises(DeviceTimeout) as info:
        async with device_deadline("r1", "10.0.0.1:4433", 0.01, "get.device.info"):
            await asyncio.Event().wait()
    err = info.value
    assert (err.device, err.endpoint) == ("r1", "10.0.0.1:4433")
    assert err.message == "get.device.info: no reply within 0.01s"


@pytest.mark.asyncio
async def test_other_errors_and_results_pass_through() -> None:
    async with device_deadline("r1", "h:80/x", 5.0):
        got = 42
    assert got == 42
    with pytest.raises(DeviceUnreachable):
        async with device_deadline("r1", "h:80/x", 5.0):
            raise DeviceUnreachable("r1", "h:80/x", "refused")
