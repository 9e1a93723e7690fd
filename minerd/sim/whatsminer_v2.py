"""Simulated Whatsminer API v2 on 4028 (firmware-apis.md 5.1), reached through the hook in
minerd.sim.cgminer: `get_token`, the encrypted privileged frame {"enc":1,"data":...} with
power_off/power_on/set_power_pct/adjust_power_limit, and btminer's own reads (`status`,
`get_version`, `get_miner_info`, `get_psu`, `get_error_code`) whose top-level STATUS is a
string."""

from __future__ import annotations

from collections.abc import Callable

from minerd.sim.rig import RigSim
from minerd.sim.whatsminer_state import (
    FW_VERSION,
    MAX_TOKENS,
    Reply,
    base_w,
    mac,
    new_salt,
    password,
    set_limit,
    set_percent,
    state,
)
from minerd.transports.whatsminer import (
    CODE_INVALID,
    CODE_OK,
    CODE_TOKEN_ERROR,
    CODE_TOKEN_OVER_MAX,
    TOKEN_LIFETIME_S,
    aes_decrypt,
    aes_encrypt,
    v2_token,
)

__all__ = ["API_V2_COMMANDS", "handle_v2"]


def _v2(letter: str, code: int, msg: object, now_s: float) -> Reply:
    """btminer's own envelope: STATUS is a string, not cgminer's list."""
    return {"STATUS": letter, "When": int(now_s), "Code": code, "Msg": msg, "Description": ""}


def _status(rig: RigSim, now_s: float) -> Reply:
    off = "false" if rig.awake else "true"
    limit = round(base_w(rig))
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
            "mac": mac(rig),
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
    salt, newsalt = new_salt(), new_salt()
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
        set_percent(rig, pct, now_s)
        return ok
    if name == "adjust_power_limit":
        watts = _int_param(cmd, "power_limit")
        if watts is None or watts <= 0:
            return _v2("E", CODE_INVALID, "invalid data", now_s)
        set_limit(rig, float(watts), now_s)
        return ok
    return _v2("E", CODE_INVALID, "invalid command", now_s)
