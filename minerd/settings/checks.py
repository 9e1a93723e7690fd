"""Checks across fields and items, each problem with its key path ('rigs[2].hosts: ...')."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from minerd.errors import ProfileError
from minerd.settings.models import (
    DEFAULT_RIG_USERNAMES,
    RIG_PORT_KEYS,
    GridSettings,
    MeterSettings,
    RigGroupSettings,
)


def _num(value: float) -> str:
    return f"{value:g}"


def grid_problems(grid: GridSettings) -> list[str]:
    problems = []
    if grid.failsafe_limit_kw > grid.contracted_limit_kw:
        problems.append(
            f"grid.failsafe_limit_kw: {_num(grid.failsafe_limit_kw)} is above"
            f" grid.contracted_limit_kw {_num(grid.contracted_limit_kw)}"
        )
    if grid.contracted_limit_kw > 0 and grid.margin_kw >= grid.contracted_limit_kw:
        problems.append(
            f"grid.margin_kw: {_num(grid.margin_kw)} is not below"
            f" grid.contracted_limit_kw {_num(grid.contracted_limit_kw)}"
        )
    return problems


def duplicate_names(section: str, names: Sequence[object]) -> list[str]:
    """`meters[1].name: duplicate name 'grid-main' (also meters[0])`."""
    problems = []
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                f"{section}[{i}].name: duplicate name '{name}' (also {section}[{first[name]}])"
            )
        else:
            first[name] = i
    return problems


def meter_problems(meters: Sequence[tuple[int, MeterSettings]]) -> list[str]:
    problems = []
    seen: dict[tuple[str, int, int], int] = {}
    for i, m in meters:
        if m.stale_after_s < m.interval_s:
            problems.append(
                f"meters[{i}].stale_after_s: {_num(m.stale_after_s)} is below"
                f" meters[{i}].interval_s {_num(m.interval_s)}"
            )
        wire = (m.host.lower(), m.port, m.unit_id)
        if wire in seen:
            problems.append(
                f"meters[{i}].endpoint: {m.endpoint} unit {m.unit_id} is already read as"
                f" meters[{seen[wire]}]"
            )
        else:
            seen[wire] = i
    return problems


def rig_group_problems(i: int, group: RigGroupSettings) -> list[str]:
    key = f"rigs[{i}]"
    if group.hosts and group.csv is not None:
        return [f"{key}.csv: set either hosts or csv, not both"]
    if not group.hosts and group.csv is None:
        return [f"{key}: missing required key hosts (or csv)"]
    return rig_login_problems(key, group)


_LOGIN_DRIVERS = ("stock", "vnish", "whatsminer", "braiins")


def rig_login_problems(key: str, group: RigGroupSettings) -> list[str]:
    """Ports and logins only where the group's driver uses them (a misplaced key is a typo)."""
    given = group.model_fields_set
    used = RIG_PORT_KEYS.get(group.driver, ())
    problems = [
        f"{key}.{port}: driver '{group.driver}' has no {port}"
        + (f" (it uses {', '.join(used)})" if used else "")
        for port in ("web_port", "api_port", "grpc_port")
        if port in given and port not in used
    ]
    login = group.driver in _LOGIN_DRIVERS
    if "username" in given and group.driver not in DEFAULT_RIG_USERNAMES:
        problems.append(f"{key}.username: driver '{group.driver}' takes no username")
    if login and group.password:
        problems.append(
            f"{key}.password: driver '{group.driver}' reads its password from "
            "password_file or password_env, never inline"
        )
    if not login and group.driver != "luxos":
        problems.extend(
            f"{key}.{k}: driver '{group.driver}' takes no password"
            for k in ("password", "password_file", "password_env")
            if k in given
        )
    return problems


ProfileLoader = Callable[[str], object]


class ProfileChecker:
    """Loads each referenced profile once and reports problems at every key that names it."""

    def __init__(self, kind: str, known: Sequence[str], load: ProfileLoader) -> None:
        self.kind = kind
        self.known = sorted(known)
        self.load = load
        self._errors: dict[str, list[str]] = {}

    def check(self, key: str, name: object) -> list[str]:
        if not isinstance(name, str):
            return []
        if name not in self.known:
            known = ", ".join(self.known) or "none installed"
            return [f"{key}: unknown {self.kind} profile '{name}' (known: {known})"]
        if name not in self._errors:
            try:
                self.load(name)
                self._errors[name] = []
            except ProfileError as e:
                self._errors[name] = list(e.problems) or [str(e)]
        return [f"{key}: {self.kind} profile '{name}' is invalid: {p}" for p in self._errors[name]]


def profile_checkers() -> tuple[ProfileChecker, ProfileChecker, ProfileChecker]:
    """(meter, rig model, rig register map) checkers over the installed drivers/ profiles."""
    from minerd import profiles

    meters = ProfileChecker("meter", profiles.list_meter_maps(), profiles.load_meter_map)
    rigs = ProfileChecker("rig", profiles.list_rig_models(), profiles.load_rig_model)
    registers = ProfileChecker(
        "rig register map", profiles.list_rig_register_maps(), profiles.load_rig_register_map
    )
    return meters, rigs, registers
