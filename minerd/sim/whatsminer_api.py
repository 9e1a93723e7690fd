"""Simulated Whatsminer (btminer) control APIs (firmware-apis.md section 5).

- API v3 on the rig's family port (4433): 4-byte little-endian length + JSON both ways, one
  or more requests per connection; `get.device.info` (with the salt), `get.miner.status`
  (summary/pools/edevs, TH/s and W), `set.miner.service` start|stop, `set.miner.power_limit`,
  `set.miner.power_percent`; `set.*` checked against ts/account/token.
- API v2 on 4028: minerd.sim.whatsminer_v2; what both keep per rig: whatsminer_state.
Faults: hung (accepts, never answers), slow (answers after SLOW_REPLY_S wall seconds),
offline (the fleet closes the listener), ignores_commands (answers OK, RigSim does nothing).
"""

from __future__ import annotations

import asyncio
import json
import struct

from minerd.clock import Clock
from minerd.sim import firmware
from minerd.sim.family_base import SIM_LOGINS, FamilyListeners
from minerd.sim.rig import RigSim
from minerd.sim.rigserver import HUNG_HOLD_S, SLOW_REPLY_S, ServerBook
from minerd.sim.whatsminer_state import (
    FW_VERSION,
    Reply,
    base_w,
    mac,
    password,
    set_limit,
    set_percent,
    state,
)
from minerd.transports.whatsminer import v3_token

__all__ = ["WhatsminerV3Listeners", "listeners", "state"]

API_V3_VERSION = "3.0.2"
MAX_FRAME_BYTES = 65_536


def _v3(code: int, msg: object, desc: str, now_s: float) -> Reply:
    return {"code": code, "when": int(now_s), "msg": msg, "desc": desc}


def _model_code(rig: RigSim) -> str:
    # "Whatsminer M50S" -> "M50S_VH30": the board-version suffix firmware appends
    return rig.model.model.split()[-1] + "_VH30"


def _device_info(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    return {
        "miner": {
            "type": _model_code(rig),
            "board-num": str(rig.model.boards),
            "miner-sn": f"SIMWM{rig.plan.index:08d}",
            "hash-board": "HB_VH30",
            "working": "true" if rig.awake else "false",
            **{f"pcbsn{b}": f"SIMPCB{b:02d}" for b in range(rig.model.boards)},
        },
        "power": {
            "type": "P221B",
            "iin": round(v.power_w / 226.5, 2),
            "vin": 226.5,
            "fanspeed": 7200,
        },
        "system": {
            "api": API_V3_VERSION,
            "fwversion": FW_VERSION,
            "platform": "H616",
            "ledstatus": "auto",
        },
        "network": {"ip": rig.plan.host, "mac": mac(rig), "hostname": rig.rig_id.lower()},
        "salt": state(rig).v3_salt,
        "error-code": [],
    }


def _summary_v3(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    ths = round(v.hashrate_ths, 3)
    elapsed = int(max(0.0, v.uptime_s))
    chips = [c for c in v.chip_temps_c if c > 0] or [0.0]
    limit = rig.power_limit_w if rig.power_limit_w is not None else base_w(rig)
    return {
        "elapsed": elapsed,
        "bootup-time": int(now_s) - elapsed,
        "hash-realtime": ths,
        "hash-average": ths,
        "hash-1min": ths,
        "hash-15min": ths,
        "factory-hash": round(rig.model.nominal_hashrate_ths, 1),
        "power-realtime": round(v.power_w),
        "power-5min": round(v.power_w),
        "power-limit": round(limit),
        "power-rate": round(v.power_w / v.hashrate_ths, 2) if v.hashrate_ths > 0 else 0.0,
        "board-temperature": [round(t, 1) for t in v.pcb_temps_c],
        "chip-temp-min": round(min(chips) - 4.0, 1),
        "chip-temp-avg": round(sum(chips) / len(chips) - 2.0, 1),
        "chip-temp-max": round(max(chips), 1),
        "environment-temperature": rig.ambient_c,
        "fan-speed-in": v.fan_rpms[0],
        "fan-speed-out": v.fan_rpms[-1],
        "freq-avg": firmware.FREQ_MHZ if v.awake else 0,
        "up-freq-finish": 1,
    }


def _edevs_v3(rig: RigSim, now_s: float) -> list[Reply]:
    v = rig.view(now_s)
    per_board = v.hashrate_ths / max(1, v.boards_ok)
    out: list[Reply] = []
    for b in range(rig.model.boards):
        alive = b < v.boards_ok
        chip = round(v.chip_temps_c[b], 1)
        out.append(
            {
                "id": b,
                "slot": b,
                "hash-average": round(per_board, 3) if alive else 0.0,
                "effective-chips": firmware.CHIPS_PER_BOARD if alive else 0,
                "chip-temp-min": round(chip - 4.0, 1),
                "chip-temp-avg": round(chip - 2.0, 1),
                "chip-temp-max": chip,
                "freq": firmware.FREQ_MHZ if v.awake and alive else 0,
            }
        )
    return out


def _pools_v3(rig: RigSim) -> list[Reply]:
    return [
        {
            "id": 1,
            "url": "stratum+tcp://pool.sim.invalid:3333",
            "status": "alive",
            "account": f"minerd.{rig.rig_id}",
            "stratum-active": True,
        }
    ]


def handle_v3(rig: RigSim, request: dict[str, object], now_s: float) -> Reply:
    cmd = request.get("cmd")
    param = request.get("param")
    if not isinstance(cmd, str):
        return _v3(-1, "cmd item is null", "", now_s)
    if cmd.startswith("set."):
        return _set_v3(rig, cmd, param, request, now_s)
    if cmd == "get.device.info":
        info = _device_info(rig, now_s)
        if isinstance(param, str) and param in info:
            return _v3(0, {param: info[param]}, cmd, now_s)
        return _v3(0, info, cmd, now_s)
    if cmd == "get.miner.status":
        if not isinstance(param, str) or not param:
            return _v3(-3, "param item is null", cmd, now_s)
        msg: Reply = {}
        for part in param.split("+"):
            if part == "summary":
                msg["summary"] = _summary_v3(rig, now_s)
            elif part == "edevs":
                msg["edevs"] = _edevs_v3(rig, now_s)
            elif part == "pools":
                msg["pools"] = _pools_v3(rig)
            else:
                return _v3(-2, "invalid param", cmd, now_s)
        return _v3(0, msg, cmd, now_s)
    return _v3(-1, "invalid command", cmd, now_s)


def _set_v3(
    rig: RigSim, cmd: str, param: object, request: dict[str, object], now_s: float
) -> Reply:
    ts = request.get("ts")
    token = request.get("token")
    account = request.get("account")
    if not isinstance(ts, int) or not isinstance(token, str) or not isinstance(account, str):
        return _v3(-3, "param item is null", cmd, now_s)
    expected = v3_token(cmd, password(), state(rig).v3_salt, ts)
    if account != SIM_LOGINS["whatsminer"][0] or token != expected:
        return _v3(-4, "token check failed", cmd, now_s)
    if cmd == "set.miner.service":
        if param == "stop":
            rig.command_sleep(now_s)
        elif param in ("start", "restart"):
            rig.command_wake(now_s)
        else:
            return _v3(-2, "invalid param", cmd, now_s)
        return _v3(0, "ok", cmd, now_s)
    if cmd in ("set.miner.power_limit", "set.miner.power_percent"):
        try:
            value = int(str(param))
        except ValueError:
            return _v3(-2, "invalid param", cmd, now_s)
        if cmd == "set.miner.power_limit" and value > 0:
            set_limit(rig, float(value), now_s)
            return _v3(0, "ok", cmd, now_s)
        if cmd == "set.miner.power_percent" and 0 <= value <= 100:
            set_percent(rig, value, now_s)
            return _v3(0, "ok", cmd, now_s)
        return _v3(-2, "invalid param", cmd, now_s)
    return _v3(-1, "invalid command", cmd, now_s)


class _V3Connection(asyncio.Protocol):
    """Length-framed requests, each answered in order; the client closes when done."""

    def __init__(self, rig: RigSim, clock: Clock, live: set[asyncio.Transport]) -> None:
        self._rig = rig
        self._clock = clock
        self._live = live
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._live.add(transport)
        if "hung" in self._rig.faults:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(HUNG_HOLD_S, transport.close))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._live.discard(self._transport)
        for timer in self._timers:
            timer.cancel()

    def data_received(self, data: bytes) -> None:
        if "hung" in self._rig.faults:
            return
        self._buf += data
        while len(self._buf) >= 4:
            (size,) = struct.unpack("<I", self._buf[:4])
            if size > MAX_FRAME_BYTES:
                self._reply(_v3(-1, "frame too large", "", self._clock.now_s()))
                self._buf = b""
                return
            if len(self._buf) < 4 + size:
                return
            body, self._buf = self._buf[4 : 4 + size], self._buf[4 + size :]
            now_s = self._clock.now_s()
            try:
                request = json.loads(body)
            except ValueError:
                self._reply(_v3(-1, "invalid json", "", now_s))
                continue
            if not isinstance(request, dict):
                self._reply(_v3(-1, "invalid json", "", now_s))
                continue
            self._reply(handle_v3(self._rig, request, now_s))

    def _reply(self, reply: Reply) -> None:
        raw = json.dumps(reply, separators=(",", ":")).encode()
        frame = struct.pack("<I", len(raw)) + raw
        if "slow" in self._rig.faults:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(SLOW_REPLY_S, self._write, frame))
        else:
            self._write(frame)

    def _write(self, frame: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame)


class WhatsminerV3Listeners(ServerBook):
    """One API v3 server per rig on rig.plan.host:rig.plan.family_port."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        super().__init__()

    async def open(self, rig: RigSim) -> int:
        loop = asyncio.get_running_loop()
        sock = self.bind(rig.rig_id, rig.plan.host, rig.plan.family_port)
        live = self.live
        server = await loop.create_server(lambda: _V3Connection(rig, self._clock, live), sock=sock)
        return self.add(rig.rig_id, server, sock)


def listeners(clock: Clock) -> FamilyListeners:
    return WhatsminerV3Listeners(clock)
