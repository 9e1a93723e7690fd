"""Modbus TCP: one hub per endpoint, one connection, one request on the wire at a time.

A TCP-to-RS-485 gateway carries one request at a time for every unit id behind it, so all
devices on an endpoint share one ModbusHub and its lock. Errors name the device and the
endpoint: DeviceUnreachable (no connection), DeviceTimeout (no answer in time),
ModbusException (the device answered with an exception code), ProtocolError (odd reply).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.exceptions import ModbusException as PymodbusError

from minerd.errors import (
    DeviceTimeout,
    DeviceUnreachable,
    ModbusException,
    ProtocolError,
)

log = logging.getLogger(__name__)

READ_FUNCTION_CODES: Final = frozenset({3, 4})
MAX_READ_COUNT: Final = 125  # Modbus limit for FC3/FC4
MAX_WRITE_COUNT: Final = 123  # Modbus limit for FC16
EXCEPTION_NAMES: Final[dict[int, str]] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


def parse_endpoint(endpoint: str, default_port: int = 502) -> tuple[str, int]:
    """ "tcp://host:port" (or "host:port", "host") -> (host, port)."""
    text = endpoint if "://" in endpoint else f"tcp://{endpoint}"
    parts = urlsplit(text)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"not a Modbus TCP endpoint: {endpoint!r} (want tcp://host:port)")
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad port in Modbus endpoint {endpoint!r}") from exc
    return parts.hostname, port


class ModbusHub:
    """One Modbus TCP endpoint. Safe to share between many devices and tasks."""

    def __init__(self, host: str, port: int = 502, *, timeout_s: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.endpoint = f"tcp://{host}:{port}"
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._failing = False  # log an outage once at WARNING, then DEBUG
        self.requests_sent = 0  # requests put on the wire (for tests and metrics)
        self.connects = 0

    @classmethod
    def from_endpoint(cls, endpoint: str, *, timeout_s: float = 1.0) -> ModbusHub:
        host, port = parse_endpoint(endpoint)
        return cls(host, port, timeout_s=timeout_s)

    def _where(self, unit_id: int) -> str:
        return f"{self.endpoint} unit {unit_id}"

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def _connect(self, device: str, unit_id: int, timeout_s: float) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop()
        # No pymodbus auto-reconnect or retries: the poller decides when to try again.
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=max(self.timeout_s, timeout_s),
            retries=0,
            reconnect_delay=0,
        )
        try:
            async with asyncio.timeout(timeout_s):
                ok = await client.connect()
        except asyncio.CancelledError:
            client.close()
            raise
        except TimeoutError:
            client.close()
            raise DeviceTimeout(device, self._where(unit_id), "connect timed out") from None
        except OSError as exc:
            client.close()
            raise DeviceUnreachable(device, self._where(unit_id), f"connect: {exc}") from exc
        if not ok:
            client.close()
            raise DeviceUnreachable(device, self._where(unit_id), "connection refused")
        self._client = client
        self.connects += 1
        return client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    def _log_failure(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("modbus %s failing: %s", self.endpoint, exc)
        else:
            log.debug("modbus %s still failing: %s", self.endpoint, exc)

    def _log_success(self) -> None:
        if self._failing:
            self._failing = False
            log.info("modbus %s answers again", self.endpoint)

    async def _call(
        self,
        device: str,
        unit_id: int,
        what: str,
        timeout_s: float | None,
        request: str,
        address: int,
        count: int,
        values: Sequence[int] | None = None,
    ) -> list[int]:
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        where = self._where(unit_id)
        async with self._lock:
            try:
                client = await self._connect(device, unit_id, limit_s)
                self.requests_sent += 1
                try:
                    async with asyncio.timeout(limit_s):
                        if request == "read3":
                            reply = await client.read_holding_registers(
                                address, count=count, device_id=unit_id
                            )
                        elif request == "read4":
                            reply = await client.read_input_registers(
                                address, count=count, device_id=unit_id
                            )
                        else:
                            reply = await client.write_registers(
                                address, list(values or ()), device_id=unit_id
                            )
                except asyncio.CancelledError:
                    # The reply may still arrive and would answer the next request: drop it.
                    self._drop()
                    raise
                except TimeoutError:
                    # A late answer would confuse the next request: start afresh.
                    self._drop()
                    raise DeviceTimeout(
                        device, where, f"{what}: no answer in {limit_s:g} s"
                    ) from None
                except ConnectionException as exc:
                    self._drop()
                    raise DeviceUnreachable(device, where, f"{what}: {exc}") from exc
                except ModbusIOException as exc:
                    self._drop()
                    raise DeviceTimeout(device, where, f"{what}: no answer ({exc})") from exc
                except PymodbusError as exc:
                    self._drop()
                    raise ProtocolError(device, where, f"{what}: {exc}") from exc
                except OSError as exc:
                    self._drop()
                    raise DeviceUnreachable(device, where, f"{what}: {exc}") from exc
            except (DeviceTimeout, DeviceUnreachable, ProtocolError) as exc:
                self._log_failure(exc)
                raise
            self._log_success()
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusException(device, where, f"{what}: exception {code} ({name})", code)
        if values is not None:
            return []
        registers = list(reply.registers)
        if len(registers) != count:
            raise ProtocolError(device, where, f"{what}: got {len(registers)} registers")
        return registers

    async def read_registers(
        self,
        device: str,
        unit_id: int,
        function_code: int,
        address: int,
        count: int,
        *,
        timeout_s: float | None = None,
    ) -> list[int]:
        """Read `count` registers at `address` with FC3 (holding) or FC4 (input)."""
        if function_code not in READ_FUNCTION_CODES:
            raise ValueError(f"function code {function_code} is not 3 or 4")
        if not 1 <= count <= MAX_READ_COUNT:
            raise ValueError(f"count {count} outside 1..{MAX_READ_COUNT}")
        what = f"FC{function_code} read {count} at {address}"
        request = "read3" if function_code == 3 else "read4"
        return await self._call(device, unit_id, what, timeout_s, request, address, count)

    async def write_registers(
        self,
        device: str,
        unit_id: int,
        address: int,
        values: Sequence[int],
        *,
        timeout_s: float | None = None,
    ) -> None:
        """Write holding registers from `address` (FC16)."""
        if not 1 <= len(values) <= MAX_WRITE_COUNT:
            raise ValueError(f"{len(values)} values outside 1..{MAX_WRITE_COUNT}")
        if any(not 0 <= v <= 0xFFFF for v in values):
            raise ValueError(f"register values must be 0..65535: {list(values)}")
        what = f"FC16 write {len(values)} at {address}"
        await self._call(device, unit_id, what, timeout_s, "write", address, len(values), values)
