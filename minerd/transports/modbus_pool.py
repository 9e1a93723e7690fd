"""One ModbusHub per endpoint, shared by every device configured on it."""

from __future__ import annotations

from minerd.transports.modbus import ModbusHub, parse_endpoint


class ModbusHubPool:
    """Hands out the same hub for the same (host, port), so a gateway gets one connection."""

    def __init__(self, *, timeout_s: float = 1.0) -> None:
        self.timeout_s = timeout_s
        self._hubs: dict[tuple[str, int], ModbusHub] = {}

    def hub(self, endpoint: str) -> ModbusHub:
        key = parse_endpoint(endpoint)
        found = self._hubs.get(key)
        if found is None:
            found = ModbusHub(key[0], key[1], timeout_s=self.timeout_s)
            self._hubs[key] = found
        return found

    def hubs(self) -> list[ModbusHub]:
        return list(self._hubs.values())

    async def close(self) -> None:
        for hub in self._hubs.values():
            await hub.close()
