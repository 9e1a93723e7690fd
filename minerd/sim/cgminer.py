"""cgminer JSON API replies as bmminer/LUXminer firmware builds them.

Pure functions of a RigSim and the time: no I/O here. Status codes follow cgminer's api.c
where it has one. LuxOS's own commands (sessions, curtail, profiles, fans, temps...) are in
minerd.sim.luxos; on a LuxOS rig they answer before the cgminer reports of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from minerd.model import RigProtocol
from minerd.sim import bosminer_devdetails, firmware
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
    return firmware.description(rig)


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


def handle_request(rig: RigSim, request: dict[str, object], now_s: float) -> Reply | None:
    """A family's requests outside cgminer's `command` set (None: not one): Whatsminer API v2
    `get_token`, encrypted privileged frames and btminer reads (minerd.sim.whatsminer_v2)."""
    if rig.plan.protocol is RigProtocol.WHATSMINER:
        from minerd.sim.whatsminer_v2 import handle_v2  # here: import cycle

        return handle_v2(rig, request, now_s)
    return None


def single(rig: RigSim, command: str, parameter: str, now_s: float) -> Reply:
    if rig.plan.protocol is RigProtocol.LUXOS:
        lux = LUXOS_COMMANDS.get(command)
        if lux is not None:
            return lux(rig, parameter, now_s)
    if command == "devdetails" and rig.plan.protocol is RigProtocol.BRAIINS:
        return bosminer_devdetails.devdetails(rig, now_s, firmware_name(rig))  # pyasic 6.1
    report = REPORTS.get(command)
    if report is not None:
        return report(rig, now_s)
    return error(rig, now_s, CODE_INVALID_COMMAND, "Invalid command")


# ---------------------------------------------------------------- report commands


def version(rig: RigSim, now_s: float) -> Reply:
    return {
        "STATUS": status("S", 22, "CGMiner versions", now_s, rig),
        "VERSION": [firmware.version(rig)],
        "id": 1,
    }


def summary(rig: RigSim, now_s: float) -> Reply:
    return {
        "STATUS": status("S", 11, "Summary", now_s, rig),
        "SUMMARY": [firmware.summary(rig, rig.view(now_s), now_s)],
        "id": 1,
    }


def stats(rig: RigSim, now_s: float) -> Reply:
    return {
        "STATUS": status("S", 70, "CGMiner stats", now_s, rig),
        "STATS": firmware.stats(rig, rig.view(now_s)),
        "id": 1,
    }


def devs(rig: RigSim, now_s: float) -> Reply:
    entries = firmware.devs(rig, rig.view(now_s))
    return {
        "STATUS": status("S", 9, f"{len(entries)} ASC(s)", now_s, rig),
        "DEVS": entries,
        "id": 1,
    }


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
