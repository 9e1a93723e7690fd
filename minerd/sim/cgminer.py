"""cgminer JSON API replies as bmminer/LUXminer firmware builds them.

Pure functions of a RigSim and the time: no I/O here. Status codes follow cgminer's api.c
where it has one. LuxOS's own commands (sessions, curtail, profiles, fans, temps...) are in
minerd.sim.luxos; on a LuxOS rig they answer before the cgminer reports of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from minerd.model import RigProtocol
from minerd.sim.luxos import LUXOS_COMMANDS, LUXOS_REPORTS
from minerd.sim.rig import RigSim

Reply = dict[str, object]

REPORT_COMMANDS = frozenset({"version", "summary", "stats", "devs", "pools", "config"})
CODE_INVALID_COMMAND = 14
CODE_INVALID_JSON = 23
CODE_JOIN_DENIED = 45


def status(letter: str, code: int, msg: str, now_s: float, rig: RigSim) -> list[Reply]:
    return [
        {
            "STATUS": letter,
            "When": int(now_s),
            "Code": code,
            "Msg": msg,
            "Description": firmware_name(rig),
        }
    ]


def firmware_name(rig: RigSim) -> str:
    if rig.plan.protocol is RigProtocol.LUXOS:
        return "LUXminer 2024.5.1"
    return "bmminer 1.0.0"


def error(rig: RigSim, now_s: float, code: int, msg: str) -> Reply:
    return {"STATUS": status("E", code, msg, now_s, rig), "id": 1}


def handle(rig: RigSim, command: str, parameter: str, now_s: float) -> Reply:
    """The reply to one request (command may join report commands with '+')."""
    if "+" in command:
        parts = command.split("+")
        allowed = REPORT_COMMANDS | (
            LUXOS_REPORTS.keys() if rig.plan.protocol is RigProtocol.LUXOS else frozenset()
        )
        for part in parts:
            if part not in allowed:
                return error(rig, now_s, CODE_JOIN_DENIED, f"Join command '{part}' not allowed")
        joined: Reply = {part: [single(rig, part, parameter, now_s)] for part in parts}
        joined["id"] = 1
        return joined
    return single(rig, command, parameter, now_s)


def single(rig: RigSim, command: str, parameter: str, now_s: float) -> Reply:
    if rig.plan.protocol is RigProtocol.LUXOS:
        lux = LUXOS_COMMANDS.get(command)
        if lux is not None:
            return lux(rig, parameter, now_s)
    report = REPORTS.get(command)
    if report is not None:
        return report(rig, now_s)
    return error(rig, now_s, CODE_INVALID_COMMAND, "Invalid command")


# ---------------------------------------------------------------- report commands


def version(rig: RigSim, now_s: float) -> Reply:
    m = rig.model
    ver: Reply = {"API": "3.7", "Miner": firmware_name(rig), "Type": f"{m.vendor} {m.model}"}
    if rig.plan.protocol is RigProtocol.LUXOS:
        ver["LUXminer"] = "2024.5.1"
    else:
        ver["BMMiner"] = "1.0.0"
    ver["CompileTime"] = "Mon Jan 1 00:00:00 UTC 2024"
    return {
        "STATUS": status("S", 22, "CGMiner versions", now_s, rig),
        "VERSION": [ver],
        "id": 1,
    }


def summary(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    mhs = round(v.hashrate_ths * 1e6, 2)
    elapsed = int(v.uptime_s)
    shares = int(v.hashrate_ths * elapsed / 4.0)
    return {
        "STATUS": status("S", 11, "Summary", now_s, rig),
        "SUMMARY": [
            {
                "Elapsed": elapsed,
                "MHS av": mhs,
                "MHS 5s": mhs,
                "MHS 1m": mhs,
                "MHS 5m": mhs,
                "MHS 15m": mhs,
                "Found Blocks": 0,
                "Getworks": elapsed // 30,
                "Accepted": shares,
                "Rejected": shares // 500,
                "Hardware Errors": 0,
                "Utility": round(shares / max(1, elapsed) * 60, 2),
                "Discarded": 0,
                "Stale": 0,
                "Get Failures": 0,
                "Local Work": shares * 4,
                "Remote Failures": 0,
                "Network Blocks": 0,
                "Total MH": round(mhs * elapsed, 1),
                "Work Utility": round(shares / max(1, elapsed) * 60, 2),
                "Difficulty Accepted": float(shares * 65536),
                "Difficulty Rejected": float(shares // 500 * 65536),
                "Difficulty Stale": 0.0,
                "Best Share": 65536 * 17,
                "Device Hardware%": 0.0,
                "Device Rejected%": 0.2 if shares else 0.0,
                "Pool Rejected%": 0.2 if shares else 0.0,
                "Pool Stale%": 0.0,
                "Last getwork": int(now_s),
            }
        ],
        "id": 1,
    }


def stats(rig: RigSim, now_s: float) -> Reply:
    m = rig.model
    v = rig.view(now_s)
    boards = max(1, m.boards)
    ideal_ghs = m.nominal_hashrate_ths * 1000.0
    chips_per_board = 126
    per_board_ghs = v.hashrate_ths * 1000.0 / max(1, v.boards_ok)
    s1: Reply = {
        "STATS": 0,
        "ID": "BC50",
        "Elapsed": int(v.uptime_s),
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
        "GHS 5s": f"{v.hashrate_ths * 1000.0:.2f}",
        "GHS av": round(v.hashrate_ths * 1000.0, 2),
        "miner_count": boards,
        "frequency": "525" if v.awake else "0",
        "fan_num": len(v.fan_rpms),
    }
    for i, rpm in enumerate(v.fan_rpms[:4], start=1):
        s1[f"fan{i}"] = rpm
    s1["temp_num"] = boards
    for b in range(min(boards, 3)):
        s1[f"temp{b + 1}"] = v.pcb_temps_c[b]
        s1[f"temp2_{b + 1}"] = v.chip_temps_c[b]
    s1["temp_max"] = max(v.chip_temps_c)
    s1["total_rateideal"] = round(ideal_ghs, 2)
    s1["total_freqavg"] = 525.0 if v.awake else 0.0
    s1["total_acn"] = chips_per_board * v.boards_ok
    s1["total_rate"] = round(v.hashrate_ths * 1000.0, 2)
    for b in range(min(boards, 3)):
        alive = b < v.boards_ok
        s1[f"chain_rateideal{b + 1}"] = round(ideal_ghs / boards, 2)
        s1[f"chain_acn{b + 1}"] = chips_per_board if alive else 0
        s1[f"chain_acs{b + 1}"] = ("o" * 8 + " ") * 4 if alive else ""
        s1[f"chain_rate{b + 1}"] = f"{per_board_ghs:.2f}" if alive else ""
        s1[f"chain_hw{b + 1}"] = 0
    s1["rate_unit"] = "GH/s"
    return {
        "STATUS": status("S", 70, "CGMiner stats", now_s, rig),
        "STATS": [
            {
                "BMMiner" if rig.plan.protocol is not RigProtocol.LUXOS else "LUXminer": "1.0.0",
                "Miner": firmware_name(rig),
                "CompileTime": "Mon Jan 1 00:00:00 UTC 2024",
                "Type": f"{m.vendor} {m.model}",
            },
            s1,
        ],
        "id": 1,
    }


def devs(rig: RigSim, now_s: float) -> Reply:
    m = rig.model
    v = rig.view(now_s)
    boards = max(1, m.boards)
    per_board_mhs = v.hashrate_ths * 1e6 / max(1, v.boards_ok)
    entries: list[Reply] = []
    for b in range(boards):
        alive = b < v.boards_ok
        entries.append(
            {
                "ASC": b,
                "Name": "BTM_SOC",
                "ID": b,
                "Enabled": "Y",
                "Status": "Alive" if alive else "Dead",
                "Temperature": v.chip_temps_c[b],
                "MHS av": round(per_board_mhs, 2) if alive else 0.0,
                "MHS 5s": round(per_board_mhs, 2) if alive else 0.0,
                "Accepted": 0,
                "Rejected": 0,
                "Hardware Errors": 0,
                "Device Elapsed": int(v.uptime_s),
            }
        )
    return {"STATUS": status("S", 9, f"{boards} ASC(s)", now_s, rig), "DEVS": entries, "id": 1}


def pools(rig: RigSim, now_s: float) -> Reply:
    return {
        "STATUS": status("S", 7, "1 Pool(s)", now_s, rig),
        "POOLS": [
            {
                "POOL": 0,
                "URL": "stratum+tcp://pool.sim.invalid:3333",
                "Status": "Alive",
                "Priority": 0,
                "Quota": 1,
                "Long Poll": "N",
                "Getworks": 0,
                "Accepted": 0,
                "Rejected": 0,
                "User": f"minerd.{rig.rig_id}",
                "Stratum Active": True,
                "Stratum URL": "pool.sim.invalid",
            }
        ],
        "id": 1,
    }


def config(rig: RigSim, now_s: float) -> Reply:
    return {
        "STATUS": status("S", 33, "CGMiner config", now_s, rig),
        "CONFIG": [
            {
                "ASC Count": max(1, rig.model.boards),
                "PGA Count": 0,
                "Pool Count": 1,
                "Strategy": "Failover",
                "Log Interval": 5,
                "Device Code": "",
                "OS": "Linux",
                "Hotplug": "None",
            }
        ],
        "id": 1,
    }


REPORTS: dict[str, Callable[[RigSim, float], Reply]] = {
    "version": version,
    "summary": summary,
    "stats": stats,
    "devs": devs,
    "pools": pools,
    "config": config,
}


def encode(reply: Reply) -> bytes:
    """Compact JSON with the terminating NUL, as cgminer writes it."""
    return json.dumps(reply, separators=(",", ":")).encode() + b"\x00"


def break_json(payload: bytes, variant: int) -> bytes:
    """Firmware-style damage, one of four kinds in turn (the NUL is kept unless truncated)."""
    body = payload.rstrip(b"\x00")
    kind = variant % 4
    if kind == 0:  # trailing commas before closers
        body = body.replace(b"}]", b"},]", 1).replace(b"}", b",}", 1)
    elif kind == 1:  # two objects glued
        body = body + body
    elif kind == 2:  # a bare inf where a number was
        idx = body.find(b'"MHS 5s":')
        if idx < 0:
            idx = body.find(b'"When":')
        if idx >= 0:
            colon = body.index(b":", idx) + 1
            end = colon
            while end < len(body) and body[end : end + 1] not in (b",", b"}"):
                end += 1
            body = body[:colon] + b"inf" + body[end:]
    else:  # truncated: half a reply and no NUL
        return body[: max(1, len(body) // 2)]
    return body + b"\x00"
