"""The time limit of one exchange with a device, ending as the DeviceTimeout that names the
device, the endpoint and the limit, in the same words whichever wire it was."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from minerd.errors import DeviceTimeout

__all__ = ["device_deadline"]


@contextlib.asynccontextmanager
async def device_deadline(
    device: str, endpoint: str, limit_s: float, what: str = ""
) -> AsyncIterator[None]:
    """Run the body under asyncio.timeout(limit_s); a timeout becomes a DeviceTimeout."""
    try:
        async with asyncio.timeout(limit_s):
            yield
    except TimeoutError:
        head = f"{what}: " if what else ""
        raise DeviceTimeout(device, endpoint, f"{head}no reply within {limit_s:g}s") from None
