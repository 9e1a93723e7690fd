"""Simulated Whatsminer (btminer) control APIs (firmware-apis.md section 5).

- API v3 on the rig's family port (4433): 4-byte little-endian length + JSON both ways, one
  or more requests per connection; `get.device.info` (with the salt), `get.miner.status`
  (summary/pools/edevs, TH/s and W), `set.miner.service` start|stop, `set.miner.power_limit`,
  `set.miner.power_percent`; `set.*` checked against ts/account/token.
- API v2 on 4028 (through the hook in minerd.sim.cgminer): `get_token`, the encrypted
  privileged frame {"enc":1,"data":...} with power_off/power_on/set_power_pct/
  adjust_power_limit, and btminer's own reads (`status`, `get_version`, `get_miner_info`,
  `get_psu`, `get_error_code`) whose top-level STATUS is a string.
Faults: hung (accepts, never answers), slow (answers after SLOW_REPLY_S wall seconds),
offline (the fleet closes the listener), ignores_commands (answers OK, RigSim does nothing).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from minerd.clock import Clock
from minerd.sim import firmware
from minerd.sim.family_base import SIM_LOGINS, FamilyListeners
from minerd.sim.rig import RigSim
from minerd.sim.rigserver import HUNG_HOLD_S, SLOW_REPLY_S, ServerBook
from minerd.transports.whatsminer import (
    CODE_INVALID,
    CODE_OK,
    CODE_TOKEN_ERROR,
    CODE_TOKEN_OVER_MAX,
    TOKEN_LIFETIME_S,
    V2Token,
    aes_decrypt,
    aes_encrypt,
    v2_token,
    v3_token,
)

__all__ = ["API_V2_COMMANDS", "FW_VERSION", "WhatsminerV3Listeners", "handle_v2", "listeners"]

Reply = dict[str, object]
FW_VERSION = "20250214.16.Rel"  # a 2025 build: API v3 on 4433 beside v2 on 4028
API_V3_VERSION = "3.0.2"
MAX_TOKENS = 32  # per client IP on the rig; one sim rig keeps one pool (doc section 2)
MAX_FRAME_BYTES = 65_536
_SALT_CHARS = string.ascii_letters + string.digits


def password() -> str:
    return SIM_LOGINS["whatsminer"][1]


def _salt() -> str:
    return "".join(secrets.choice(_SALT_CHARS) for _ in range(8))


@dataclass
class _State:
    """What the firmware keeps per rig beside RigSim: tokens, v3 salt, power-limit base."""

    tokens: list[V2Token] = field(default_factory=list)
    v3_salt: str = field(default_factory=_salt)
    limit_w: float | None = None  # adjust_power_limit / set.miner.power_limit (persistent)
    percent: int = 100


_STATES: weakref.WeakKeyDictionary[RigSim, _State] = weakref.WeakKeyDictionary()


def state(rig: RigSim) -> _State:
    st = _STATES.get(rig)
    if st is None:
        st = _STATES[rig] = _State()
    return st


# ---------------------------------------------------------------- shared rig actions


def _base_w(rig: RigSim) -> float:
    st = state(rig)
    return st.limit_w if st.limit_w is not None else rig.model.nominal_power_w


def _set_percent(rig: RigSim, percent: int, now_s: float) -> None:
    if "ignores_commands" in rig.faults:
        return  # answers OK, changes nothing (RigSim's own guard covers the power)
    state(rig).percent = percent
    rig.command_power_limit(_base_w(rig) * percent / 100.0, now_s)


def _set_limit(rig: RigSim, power_w: float, now_s: float) -> None:
    # The firmware reboots to apply a new limit (doc 5.1); the sim only retargets at the
    # family's ramp (the reboot is not simulated: minerd never sends this for control).
    if "ignores_commands" in rig.faults:
        return
    state(rig).limit_w = power_w
    state(rig).percent = 100
    rig.command_power_limit(power_w, now_s)


# ---------------------------------------------------------------- API v2 on 4028


def _v2(letter: str, code: int, msg: object, now_s: float) -> Reply:
    """btminer's own envelope: STATUS is a string, not cgminer's list."""
    return {"STATUS": letter, "When": int(now_s), "Code": code, "Msg": msg, "Description": ""}


def _status(rig: RigSim, now_s: float) -> Reply:
    off = "false" if rig.awake else "true"
    limit = round(_base_w(rig))
    return _v2(
        "S",
        CODE_OK,
        {
            "mineroff": off,
            "mineroff_reason": "" if rig.awake else "power_off",
            "mineroff_time": "",
            "FirmwareVersion": f"'{FW_VERSION}'",
            "power_mode": "",
            "power_limit_set": str(limit),
            "hash_percent": str(state(rig).percent),
        },
        now_s,
    )


def _get_version(rig: RigSim, now_s: float) -> Reply:
    return _v2(
        "S",
        CODE_OK,
        {"api_ver": "2.0.5", "fw_ver": FW_VERSION, "platform": "H616", "chip": "K88"},
        now_s,
    )


def _miner_info(rig: RigSim, now_s: float) -> Reply:
    return _v2(
        "S",
        CODE_OK,
        {
            "ip": rig.plan.host,
            "proto": "dhcp",
            "netmask": "255.0.0.0",
            "dns": "127.0.0.53",
            "mac": _mac(rig),
            "ledstat": "auto",
            "gateway": "127.0.0.1",
            "hostname": rig.rig_id.lower(),
        },
        now_s,
    )


def _get_psu(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    return _v2(
        "S",
        CODE_OK,
        {
            "name": "P221B",
            "hw_version": "V01.00",
            "sw_version": "V01.00.V01.03",
            "model": "P221B",
            "iin": str(round(v.power_w / 226.5 * 1000)),
            "vin": "22650",
            "fan_speed": "7200",
            "serial_no": f"SIMPSU{rig.plan.index:06d}",
        },
        now_s,
    )


def _get_error_code(rig: RigSim, now_s: float) -> Reply:
    return _v2("S", CODE_OK, {"error_code": []}, now_s)


def _mac(rig: RigSim) -> str:
    n = rig.plan.index
    return f"C4:11:04:{(n >> 16) & 0xFF:02X}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"


API_V2_COMMANDS: dict[str, Callable[[RigSim, float], Reply]] = {
    "status": _status,
    "get_version": _get_version,
    "get_miner_info": _miner_info,
    "get_psu": _get_psu,
    "get_error_code": _get_error_code,
}


def _get_token(rig: RigSim, now_s: float) -> Reply:
    st = state(rig)
    st.tokens = [t for t in st.tokens if now_s - t.issued_s < TOKEN_LIFETIME_S]
    if len(st.tokens) >= MAX_TOKENS:
        return _v2("E", CODE_TOKEN_OVER_MAX, "over max token", now_s)
    time_s = f"{int(now_s) % 10000:04d}"
    salt, newsalt = _salt(), _salt()
    st.tokens.append(v2_token(password(), time_s, salt, newsalt, now_s))
    return _v2("S", 134, {"time": time_s, "salt": salt, "newsalt": newsalt}, now_s)


def handle_v2(rig: RigSim, request: dict[str, object], now_s: float) -> Reply | None:
    """A v2 request the cgminer dispatcher does not know; None leaves it to the reports."""
    name = request.get("cmd", request.get("command"))
    if request.get("enc") is not None:
        return _privileged(rig, request, now_s)
    if name == "get_token":
        return _get_token(rig, now_s)
    if isinstance(name, str) and name in API_V2_COMMANDS:
        return API_V2_COMMANDS[name](rig, now_s)
    return None


def _privileged(rig: RigSim, request: dict[str, object], now_s: float) -> Reply:
    data = request.get("data")
    st = state(rig)
    if not isinstance(data, str):
        return _v2("E", 137, "base64 decode error", now_s)
    for tok in st.tokens:
        if now_s - tok.issued_s >= TOKEN_LIFETIME_S:
            continue
        try:
            cmd = aes_decrypt(tok.aes_key, data)
        except (ValueError, UnicodeDecodeError):
            continue  # not this token's key (the wrong password ends here too)
        if not isinstance(cmd, dict) or cmd.get("token") != tok.sign:
            continue
        reply = _run_privileged(rig, cmd, now_s)
        return {"enc": aes_encrypt(tok.aes_key, reply)}
    return _v2("E", CODE_TOKEN_ERROR, "check token error", now_s)


def _int_param(cmd: dict[str, object], key: str) -> int | None:
    raw = cmd.get(key)
    try:
        return int(str(raw))
    except ValueError:
        return None


def _run_privileged(rig: RigSim, cmd: dict[str, object], now_s: float) -> Reply:
    name = cmd.get("cmd")
    ok = _v2("S", CODE_OK, "API command OK", now_s)
    if name == "power_off":
        rig.command_sleep(now_s)
        return ok
    if name == "power_on":
        rig.command_wake(now_s)
        return ok
    if name == "set_power_pct":
        pct = _int_param(cmd, "percent")
        if pct is None or not 0 <= pct <= 100:
            return _v2("E", CODE_INVALID, "invalid data", now_s)
        _set_percent(rig, pct, now_s)
        return ok
    if name == "adjust_power_limit":
        watts = _int_param(cmd, "power_limit")
        if watts is None or watts <= 0:
            return _v2("E", CODE_INVALID, "invalid data", now_s)
        _set_limit(rig, float(watts), now_s)
        return ok
    return _v2("E", CODE_INVALID, "invalid command", now_s)


# ---------------------------------------------------------------- API v3 on 4433


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
        "network": {"ip": rig.plan.host, "mac": _mac(rig), "hostname": rig.rig_id.lower()},
        "salt": state(rig).v3_salt,
        "error-code": [],
    }


def _summary_v3(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    ths = round(v.hashrate_ths, 3)
    elapsed = int(max(0.0, v.uptime_s))
    chips = [c for c in v.chip_temps_c if c > 0] or [0.0]
    limit = rig.power_limit_w if rig.power_limit_w is not None else _base_w(rig)
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
            _set_limit(rig, float(value), now_s)
            return _v3(0, "ok", cmd, now_s)
        if cmd == "set.miner.power_percent" and 0 <= value <= 100:
            _set_percent(rig, value, now_s)
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


class WhatsminerV3Listeners:
    """One API v3 server per rig on rig.plan.host:rig.plan.family_port."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._book = ServerBook()

    async def open(self, rig: RigSim) -> int:
        loop = asyncio.get_running_loop()
        sock = self._book.bind(rig.rig_id, rig.plan.host, rig.plan.family_port)
        live = self._book.live
        server = await loop.create_server(lambda: _V3Connection(rig, self._clock, live), sock=sock)
        return self._book.add(rig.rig_id, server, sock)

    def port_of(self, rig_id: str) -> int | None:
        return self._book.port_of(rig_id)

    def close(self, rig_id: str) -> None:
        self._book.close(rig_id)

    async def close_all(self) -> None:
        await self._book.close_all()


def listeners(clock: Clock) -> FamilyListeners:
    return WhatsminerV3Listeners(clock)
