"""Checks across fields and items, each problem with its key path ('rigs[2].hosts: ...')."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from minerd.errors import ProfileError
from minerd.profiles.paths import shipped_profile_name, site_profile_file
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
    """Resolves profile references (site-local first, then shipped), loads each once, and
    reports problems at every key that names it, naming the file for a site-local one."""

    def __init__(
        self,
        kind: str,
        shipped: Sequence[str],
        load: ProfileLoader,
        *,
        subdir: str = "",
        site_dir: Path | None = None,
        base_dir: Path | None = None,
    ) -> None:
        from minerd.profiles.loader import list_profiles

        self.kind = kind
        self.subdir = subdir
        self.shipped = set(shipped)
        self.site_dir = site_dir
        self.base_dir = base_dir or Path.cwd()
        local = list_profiles(site_dir / subdir) if site_dir is not None else []
        self.known = sorted(self.shipped | set(local))
        self.load = load
        self._errors: dict[str, list[str]] = {}

    def resolve(self, name: str) -> str | None:
        """The reference to load: a site-local file's absolute path, a shipped name, or None."""
        path = site_profile_file(name, self.subdir, self.site_dir, self.base_dir)
        if path is not None:
            return str(path)
        shipped = shipped_profile_name(name)
        return shipped if shipped in self.shipped else None

    def check(self, key: str, name: object) -> list[str]:
        if not isinstance(name, str):
            return []
        ref = self.resolve(name)
        if ref is None:
            known = ", ".join(self.known) or "none installed"
            where = (
                f"; looked in {self.site_dir / self.subdir} and the shipped profiles"
                if self.site_dir is not None
                else ""
            )
            return [f"{key}: unknown {self.kind} profile '{name}' (known: {known}){where}"]
        if ref not in self._errors:
            try:
                self.load(ref)
                self._errors[ref] = []
            except ProfileError as e:
                self._errors[ref] = list(e.problems) or [str(e)]
        label = ref if Path(ref).is_absolute() else f"'{name}'"
        return [f"{key}: {self.kind} profile {label} is invalid: {p}" for p in self._errors[ref]]


def profile_checkers(
    site_dir: Path | None = None, base_dir: Path | None = None
) -> tuple[ProfileChecker, ProfileChecker, ProfileChecker]:
    """(meter, rig model, rig register map) checkers: <site_dir>/{meters,rigs,rigs/registers}
    first, then the profiles shipped in the package's drivers/."""
    from minerd import profiles
    from minerd.profiles import loader

    meters = ProfileChecker(
        "meter",
        profiles.list_meter_maps(),
        profiles.load_meter_map,
        subdir=loader.METERS_SUBDIR,
        site_dir=site_dir,
        base_dir=base_dir,
    )
    rigs = ProfileChecker(
        "rig",
        profiles.list_rig_models(),
        profiles.load_rig_model,
        subdir=loader.RIGS_SUBDIR,
        site_dir=site_dir,
        base_dir=base_dir,
    )
    registers = ProfileChecker(
        "rig register map",
        profiles.list_rig_register_maps(),
        profiles.load_rig_register_map,
        subdir=loader.RIG_REGISTERS_SUBDIR,
        site_dir=site_dir,
        base_dir=base_dir,
    )
    return meters, rigs, registers
