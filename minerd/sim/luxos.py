"""LuxOS (LUXminer) commands of a simulated rig, replied as the firmware does.

Pure functions of a RigSim and the time: no I/O here. Layouts and status codes follow the
project reference (firmware-apis.md section 2, from recorded replies, Luxor's docs and
maintained clients). Where the reference marks a value "unconfirmed", the constant below says
so: a driver must not depend on it.

Sessions are kept exactly as the firmware keeps them (see RigSim): one at a time, ended by
60 s without use, refreshed by every privileged command that names it; a second `logon`
while one lives gets Code 402 and no SESSION; `session` needs no session and discloses the
active id (pyasic and minerd both take the live session that way).
"""

from __future__ import annotations

from collections.abc import Callable

from minerd.sim.rig import RigSim

Reply = dict[str, object]
Handler = Callable[[RigSim, str, float], Reply]

LUXMINER_VERSION = "2024.5.1"
DESCRIPTION = f"LUXminer {LUXMINER_VERSION}"

# Codes as recorded or documented (reference section 2).
CODE_POOLS = 7  # cgminer api.c "N Pool(s)"
CODE_CONFIG = 33
CODE_DEVDETAILS = 69  # cgminer api.c "Device Details"
CODE_TEMPS = 201
CODE_FANS = 202
CODE_POWER = 311
CODE_LOGON = 316
CODE_SESSION = 319
CODE_PROFILESET = 321
CODE_PROFILES = 323
CODE_GROUPS = 324
CODE_TEMPCTRL = 330  # documented for tempctrlset; the read reply's code is unconfirmed
CODE_CURTAIL = 335
CODE_ATM = 339
CODE_ATMSET = 340
CODE_ANOTHER_SESSION = 402
# Unconfirmed: no recorded reply shows these; the simulator's choice, letter "E" matters.
CODE_LOGOFF = 317
CODE_PROFILEGET = 322
CODE_INVALID_SESSION = 401
CODE_INVALID_PARAMETER = 400

# CONFIG[0].CurtailMode: "None" when awake is recorded; the sleeping value is unconfirmed.
CURTAIL_MODE_AWAKE = "None"
CURTAIL_MODE_SLEEP = "Sleep"


def status(letter: str, code: int, msg: str, now_s: float) -> list[Reply]:
    return [
        {"STATUS": letter, "When": int(now_s), "Code": code, "Msg": msg, "Description": DESCRIPTION}
    ]


def ok(code: int, msg: str, now_s: float, **sections: object) -> Reply:
    return {"STATUS": status("S", code, msg, now_s), **sections, "id": 1}


def error(code: int, msg: str, now_s: float) -> Reply:
    return {"STATUS": status("E", code, msg, now_s), "id": 1}


def split_parameter(parameter: str) -> list[str]:
    """The comma-joined parameter string as a list (the session id first, when one is due)."""
    return [part.strip() for part in parameter.split(",")] if parameter.strip() else []


def privileged(handler: Callable[[RigSim, list[str], float], Reply]) -> Handler:
    """The same session rule for every privileged command: the first parameter must be the
    live session id; using it refreshes the session's 60 s."""

    def run(rig: RigSim, parameter: str, now_s: float) -> Reply:
        args = split_parameter(parameter)
        if not args or not rig.session_valid(args[0], now_s):
            return error(CODE_INVALID_SESSION, "Invalid session id", now_s)
        return handler(rig, args[1:], now_s)

    return run


def public(handler: Callable[[RigSim, float], Reply]) -> Handler:
    return lambda rig, _parameter, now_s: handler(rig, now_s)


# ---------------------------------------------------------------- sessions


def logon(rig: RigSim, parameter: str, now_s: float) -> Reply:
    session = rig.logon(now_s)
    if session is None:
        return error(CODE_ANOTHER_SESSION, "Another session is active", now_s)
    return ok(CODE_LOGON, "Session created", now_s, SESSION=[{"SessionID": session}])


def session(rig: RigSim, now_s: float) -> Reply:
    # Reading the id does not refresh the session (only its use does).
    active = rig.active_session(now_s) or ""
    return ok(CODE_SESSION, "Session information", now_s, SESSION=[{"SessionID": active}])


def logoff(rig: RigSim, parameter: str, now_s: float) -> Reply:
    args = split_parameter(parameter)
    if not args or not rig.logoff(args[0], now_s):
        return error(CODE_INVALID_SESSION, "Invalid session id", now_s)
    return ok(CODE_LOGOFF, "Session closed", now_s)


# ---------------------------------------------------------------- control


@privileged
def curtail(rig: RigSim, args: list[str], now_s: float) -> Reply:
    mode = args[0] if args else ""
    if mode == "sleep":
        rig.command_sleep(now_s)
        action = "sleep mode"
    elif mode == "wakeup":
        rig.command_wake(now_s)
        action = "wake up"
    else:
        return error(CODE_INVALID_PARAMETER, f"Invalid curtail mode '{mode}'", now_s)
    return ok(CODE_CURTAIL, "Curtailment command sent", now_s, CURTAIL=[{"Action": action}])


@privileged
def profileset(rig: RigSim, args: list[str], now_s: float) -> Reply:
    name = args[0] if args else ""
    if rig.model.profile(name) is None:
        return error(CODE_INVALID_PARAMETER, f"Invalid profile '{name}'", now_s)
    rig.command_profile(name, now_s)
    step = _step(rig, rig.profile or name)
    return ok(
        CODE_PROFILESET,
        "Profile Set",
        now_s,
        PROFILE=[
            {"Board": 0, "FrequencyStep": step, "Profile": rig.profile or name, "VoltageStep": 0}
        ],
    )


@privileged
def atmset(rig: RigSim, args: list[str], now_s: float) -> Reply:
    for arg in args:
        key, _, value = arg.partition("=")
        if key.strip() == "enabled":
            if value.strip() not in ("true", "false"):
                return error(CODE_INVALID_PARAMETER, f"Invalid value '{value}' for enabled", now_s)
            rig.atm_enabled = value.strip() == "true"
    return ok(
        CODE_ATMSET,
        "Advanced Thermal Management configuration updated",
        now_s,
        ATM=[_atm(rig)],
    )


# ---------------------------------------------------------------- reads


def _step(rig: RigSim, name: str) -> int:
    """A profile's step from the default one, as LuxOS numbers them ("-2" ... "+1")."""
    names = [p.name for p in rig.model.profiles]
    if name not in names:
        return 0
    base = names.index("default") if "default" in names else 0
    return names.index(name) - base


def profiles(rig: RigSim, now_s: float) -> Reply:
    return ok(
        CODE_PROFILES,
        "List profiles",
        now_s,
        PROFILES=[
            {
                "CanRestore": True,
                "Frequency": 0,
                "HasOverrides": False,
                "Hashrate": round(p.hashrate_ths, 1),
                "IsDynamic": False,
                "IsTuned": False,
                "Profile Name": p.name,
                "Step": str(_step(rig, p.name)),
                "Voltage": 0.0,
                "Watts": round(p.power_w),
            }
            for p in rig.model.profiles
        ],
    )


def profileget(rig: RigSim, now_s: float) -> Reply:
    # Reply fields unconfirmed (reference 2.5): the current profile's name, watts, hashrate.
    prof = rig.model.profile(rig.profile) if rig.profile else None
    return ok(
        CODE_PROFILEGET,
        "Profile",
        now_s,
        PROFILE=[
            {
                "Profile": rig.profile or "",
                "Watts": round(prof.power_w) if prof else 0,
                "Hashrate": round(prof.hashrate_ths, 2) if prof else 0.0,
            }
        ],
    )


def power(rig: RigSim, now_s: float) -> Reply:
    # PSU false: the figure is the firmware's estimate, not a PSU reading (as recorded).
    watts = round(rig.view(now_s).power_w)
    return ok(CODE_POWER, "Power usage", now_s, POWER=[{"PSU": False, "Watts": watts}])


def fans(rig: RigSim, now_s: float) -> Reply:
    rpms = rig.view(now_s).fan_rpms
    full = max(1, rig.model.fan_rpm_nominal)
    entries = [
        {"FAN": f"FAN{i + 1}", "ID": i, "RPM": rpm, "Speed": min(100, round(100 * rpm / full))}
        for i, rpm in enumerate(rpms)
    ]
    return ok(
        CODE_FANS,
        f"{len(entries)} Fan(s)",
        now_s,
        FANCTRL=[{"MinFans": max(1, len(entries) - 1), "PowerOffSpeed": 20}],
        FANS=entries,
    )


def temps(rig: RigSim, now_s: float) -> Reply:
    v = rig.view(now_s)
    entries = []
    for board, pcb in enumerate(v.pcb_temps_c):
        intake = round(rig.ambient_c + 0.3 * (pcb - rig.ambient_c), 1) if pcb else 0.0
        entries.append(
            {
                "BottomLeft": pcb,
                "BottomRight": intake,
                "ID": board,
                "TEMP": board,
                "TopLeft": pcb,
                "TopRight": intake,
            }
        )
    corners = {
        "BottomLeft": ("Board Exhaust (bottom)", [1, 0]),
        "BottomRight": ("Board Intake (bottom)", [1, 1]),
        "TopLeft": ("Board Exhaust (top)", [0, 0]),
        "TopRight": ("Board Intake (top)", [0, 1]),
    }
    return ok(
        CODE_TEMPS,
        f"{len(entries)} Temp(s)",
        now_s,
        METADATA=[{k: {"Label": label, "Position": pos} for k, (label, pos) in corners.items()}],
        TEMPS=entries,
    )


def groups(rig: RigSim, now_s: float) -> Reply:
    return ok(
        CODE_GROUPS, "List groups", now_s, GROUPS=[{"GROUP": 0, "Name": "Default", "Quota": 1.0}]
    )


def pools(rig: RigSim, now_s: float) -> Reply:
    # LuxOS pools carry the GROUP they belong to (recorded reply); clients join them to groups.
    return ok(
        CODE_POOLS,
        "1 Pool(s)",
        now_s,
        POOLS=[
            {
                "Accepted": 0,
                "Diff": "32K",
                "GROUP": 0,
                "POOL": 0,
                "Priority": 0,
                "Quota": 1.0,
                "Rejected": 0,
                "Stale": 0,
                "Status": "Alive",
                "Stratum Active": True,
                "Stratum URL": "pool.sim.invalid:3333",
                "URL": "stratum+tcp://pool.sim.invalid:3333",
                "User": f"minerd.{rig.rig_id}",
            }
        ],
    )


def tempctrl(rig: RigSim, now_s: float) -> Reply:
    m = rig.model
    target = round(m.chip_temp_derate_c - 15.0)
    return ok(
        CODE_TEMPCTRL,
        "Temperature control",
        now_s,
        TEMPCTRL=[
            {
                "Target": target,
                "Hot": target + 5,
                "Dangerous": target + 10,
                "ChipHot": round(m.chip_temp_derate_c),
                "ChipDangerous": round(m.chip_temp_max_c),
                "WaterInletDangerous": 45,
            }
        ],
    )


def _atm(rig: RigSim) -> Reply:
    names = [p.name for p in rig.model.profiles]
    return {
        "Enabled": rig.atm_enabled,
        "MaxProfile": names[-1] if names else "",
        "MinProfile": "",
        "PostRampMinutes": 15,
        "StartupMinutes": 15,
        "TempWindow": 7.0,
    }


def atm(rig: RigSim, now_s: float) -> Reply:
    return ok(CODE_ATM, "ATM configuration values", now_s, ATM=[_atm(rig)])


def devdetails(rig: RigSim, now_s: float) -> Reply:
    # Field list unconfirmed beyond cgminer's devdetails and the model name.
    boards = max(1, rig.model.boards)
    return ok(
        CODE_DEVDETAILS,
        "Device Details",
        now_s,
        DEVDETAILS=[
            {
                "DEVDETAILS": b,
                "Name": "BTM_SOC",
                "ID": b,
                "Driver": "luxminer",
                "Kernel": "",
                "Model": rig.model.model,
                "Device Path": "",
            }
            for b in range(boards)
        ],
    )


def config(rig: RigSim, now_s: float) -> Reply:
    m = rig.model
    awake = rig.awake
    return ok(
        CODE_CONFIG,
        "LUXminer config",
        now_s,
        CONFIG=[
            {
                "ASC Count": max(1, m.boards),
                "CurtailMode": CURTAIL_MODE_AWAKE if awake else CURTAIL_MODE_SLEEP,
                "Device Code": "",
                "Hotplug": "None",
                "IsAtmEnabled": rig.atm_enabled,
                "IsPowerSupplyOn": awake,  # curtail sleep switches the PSU off
                "IsTuning": False,
                "Log Interval": 0,
                "MACAddr": _mac(rig),
                "Model": m.model,
                "NameplateTHS": m.nominal_hashrate_ths,
                "OS": "LuxOS",
                "PGA Count": 0,
                "Pool Count": 1,
                "Profile": rig.profile or "",
                "ProfileStep": str(_step(rig, rig.profile or "")),
                "RedLed": "off",
                "SerialNumber": f"SIM{rig.slot:014d}",
                "Strategy": "Failover",
                "SystemStatus": "Normal",
            }
        ],
    )


def _mac(rig: RigSim) -> str:
    n = rig.slot
    return f"02:00:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


# Commands that need no session and may be joined with '+' like cgminer's reports.
LUXOS_REPORTS: dict[str, Callable[[RigSim, float], Reply]] = {
    "atm": atm,
    "config": config,
    "devdetails": devdetails,
    "fans": fans,
    "groups": groups,
    "pools": pools,
    "power": power,
    "profileget": profileget,
    "profiles": profiles,
    "session": session,
    "tempctrl": tempctrl,
    "temps": temps,
}

LUXOS_COMMANDS: dict[str, Handler] = {
    **{name: public(fn) for name, fn in LUXOS_REPORTS.items()},
    "logon": logon,
    "logoff": logoff,
    "curtail": curtail,
    "profileset": profileset,
    "atmset": atmset,
}
