"""load_settings: read the TOML, validate every part, and report every problem at once."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from minerd.errors import ConfigError
from minerd.settings import checks
from minerd.settings.cluster import ClusterSettings, check_cluster
from minerd.settings.economics import EconomicsSettings
from minerd.settings.grid_protocols import check_grid_protocols
from minerd.settings.hosts import (
    HostSpan,
    check_csv,
    check_hosts,
    group_spans,
    overlap_problems,
)
from minerd.settings.models import (
    AlertSettings,
    ApiSettings,
    AwardSettings,
    ControlSettings,
    GridSettings,
    Iec104Settings,
    InfluxSettings,
    MeterSettings,
    MqttSettings,
    OpenAdrSettings,
    PrometheusSettings,
    RigGroupSettings,
    Settings,
    SiteSettings,
    StorageSettings,
    normalize_sha256,
)
from minerd.settings.problems import sort_problems, translate, unknown_key_message
from minerd.settings.region import RegionSiteSettings
from minerd.settings.secrets import Resolver

M = TypeVar("M", bound=BaseModel)

_TABLES: dict[str, type[BaseModel]] = {
    "site": SiteSettings,
    "grid": GridSettings,
    "control": ControlSettings,
    "api": ApiSettings,
    "influx": InfluxSettings,
    "mqtt": MqttSettings,
    "prometheus": PrometheusSettings,
    "alerts": AlertSettings,
    "storage": StorageSettings,
    "awards": AwardSettings,
    "economics": EconomicsSettings,
    "iec104": Iec104Settings,
    "openadr": OpenAdrSettings,
    "cluster": ClusterSettings,
    "region": RegionSiteSettings,
}
_ARRAYS: dict[str, type[BaseModel]] = {"meters": MeterSettings, "rigs": RigGroupSettings}
_REQUIRED = ("site", "grid", "meters")
_NOT_A_TABLE: Mapping[str, Any] = MappingProxyType({})  # stands in for a non-table array item


def load_settings(
    path: str | Path,
    *,
    check_profiles: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load and check the site config at path. Raises ConfigError listing every problem.

    Relative paths in the file are taken from the file's directory; *_env secrets are read
    from environ (default os.environ); profiles are loaded from drivers/ unless
    check_profiles is False.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"config file not found: {source}"], source=str(source)) from None
    except OSError as e:
        raise ConfigError(
            [f"cannot read config file {source}: {e.strerror}"], source=str(source)
        ) from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError([f"config file is not UTF-8: {e}"], source=str(source)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"invalid TOML: {e}"], source=str(source)) from None
    return settings_from_dict(
        raw,
        base_dir=source.absolute().parent,
        source=source,
        check_profiles=check_profiles,
        environ=environ,
    )


def settings_from_dict(
    raw: Mapping[str, Any],
    *,
    base_dir: Path,
    source: Path | None = None,
    check_profiles: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate an already parsed config (tests, generated configs). Same checks as a file."""
    problems: list[str] = []
    res = Resolver(base_dir=base_dir, environ=os.environ if environ is None else environ)
    known = [*_TABLES, *_ARRAYS]
    problems.extend(f"{k}: {unknown_key_message(k, known)}" for k in raw if k not in known)
    problems.extend(f"{k}: missing required section" for k in _REQUIRED if k not in raw)
    tables = _validate_tables(raw, problems)
    raw_meters = _raw_array(raw, "meters", problems)
    raw_rigs = _raw_array(raw, "rigs", problems)
    meters = _validate_items(MeterSettings, "meters", raw_meters, problems)
    rigs = _validate_items(RigGroupSettings, "rigs", raw_rigs, problems)

    grid = tables.get("grid")
    if isinstance(grid, GridSettings):
        problems.extend(checks.grid_problems(grid))
    problems.extend(checks.duplicate_names("meters", [m.get("name") for m in raw_meters]))
    problems.extend(checks.duplicate_names("rigs", [r.get("name") for r in raw_rigs]))
    problems.extend(checks.meter_problems(meters))
    if isinstance(raw.get("meters"), list) and "grid" not in [m.get("role") for m in raw_meters]:
        problems.append('meters: at least one meter with role = "grid" is required')
    problems.extend(_mqtt_problems(tables, rigs))
    check_grid_protocols(tables, base_dir, problems)
    check_cluster(tables, [str(r.get("name")) for r in raw_rigs], problems)
    resolved_rigs = _check_rig_hosts(rigs, raw_rigs, res, problems)
    site_dir = _profiles_dir(tables, res, problems)
    checkers = checks.profile_checkers(site_dir, base_dir)
    if check_profiles:
        problems.extend(_profile_problems(raw_meters, raw_rigs, checkers))
    resolved_meters = [_with_profile_ref(m, checkers[0]) for _, m in meters]
    resolved_rigs = [_with_rig_refs(g, checkers[1], checkers[2]) for g in resolved_rigs]

    # files and secrets
    for key, section in list(tables.items()):
        tables[key] = _resolve(key, section, res)
    problems.extend(res.problems)

    if problems:
        order = list(dict.fromkeys(["site", "grid", "meters", "rigs", *_TABLES]))
        raise ConfigError(sort_problems(problems, order), source=str(source) if source else "")
    return Settings(
        **tables,
        meters=tuple(resolved_meters),
        rigs=tuple(resolved_rigs),
        source=source,
    )


def _validate_tables(raw: Mapping[str, Any], problems: list[str]) -> dict[str, BaseModel]:
    tables: dict[str, BaseModel] = {}
    for key, model in _TABLES.items():
        if key not in raw and key in _REQUIRED:
            continue
        value = raw.get(key, {})  # absent optional tables get their defaults, resolved later
        if not isinstance(value, Mapping):
            problems.append(f"{key}: expected a table [{key}] (got {value!r})")
            continue
        validated = _validate(model, value, key, problems)
        if validated is not None:
            tables[key] = validated
    return tables


def _raw_array(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[Mapping[str, Any]]:
    """The [[key]] tables as written; a non-table is reported and stands as {} (indexes stay)."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{key}: expected an array of tables [[{key}]] (got {value!r})")
        return []
    items: list[Mapping[str, Any]] = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            items.append(item)
        else:
            problems.append(f"{key}[{i}]: expected a table (got {item!r})")
            items.append(_NOT_A_TABLE)
    return items


def _validate_items(
    model: type[M], key: str, items: list[Mapping[str, Any]], problems: list[str]
) -> list[tuple[int, M]]:
    out = []
    for i, item in enumerate(items):
        if item is _NOT_A_TABLE:
            continue
        validated = _validate(model, item, f"{key}[{i}]", problems)
        if validated is not None:
            out.append((i, validated))
    return out


def _mqtt_problems(
    tables: Mapping[str, BaseModel], rigs: list[tuple[int, RigGroupSettings]]
) -> list[str]:
    """Rig telemetry over MQTT and alerts on MQTT go through the [mqtt] broker."""
    mqtt = tables.get("mqtt")
    if not isinstance(mqtt, MqttSettings) or mqtt.enabled:
        return []
    problems = []
    alerts = tables.get("alerts")
    if isinstance(alerts, AlertSettings) and alerts.mqtt:
        problems.append("alerts.mqtt: needs [mqtt] enabled = true")
    problems.extend(
        f"rigs[{i}].driver: 'mqtt' needs [mqtt] enabled = true"
        for i, group in rigs
        if group.driver == "mqtt"
    )
    return problems


def _check_rig_hosts(
    rigs: list[tuple[int, RigGroupSettings]],
    raw_rigs: list[Mapping[str, Any]],
    res: Resolver,
    problems: list[str],
) -> list[RigGroupSettings]:
    """Hosts, CSV files and overlaps between groups; returns the groups with absolute csv."""
    resolved: list[RigGroupSettings] = []
    spans: list[HostSpan] = []
    valid = {i for i, _ in rigs}
    for i, group in rigs:
        problems.extend(checks.rig_group_problems(i, group))
        entries, host_problems = check_hosts(f"rigs[{i}].hosts", group.hosts)
        problems.extend(host_problems)
        csv_spans: list[HostSpan] = []
        if group.csv is not None:
            csv_path = res.path(group.csv)
            group = group.model_copy(update={"csv": csv_path})
            csv_spans, csv_problems = check_csv(f"rigs[{i}].csv", csv_path, group.port)
            problems.extend(csv_problems)
        resolved.append(_resolve_rig_password(f"rigs[{i}]", group, res))
        spans.extend(group_spans(i, group, entries, csv_spans))
    for i, item in enumerate(raw_rigs):
        # An invalid group's hosts are still checked, so one run shows every problem.
        partial = _partial_rig_group(item) if i not in valid else None
        if partial is not None:
            entries, host_problems = check_hosts(f"rigs[{i}].hosts", partial.hosts)
            problems.extend(host_problems)
            spans.extend(group_spans(i, partial, entries, []))
    problems.extend(overlap_problems(spans))
    return resolved


def _resolve_rig_password(key: str, group: RigGroupSettings, res: Resolver) -> RigGroupSettings:
    """The rig login's password from password_file / password_env (inline stays LuxOS's)."""
    if group.password_file is None and group.password_env is None:
        return group
    if group.driver in ("cgminer", "modbus", "mqtt"):
        return group  # refused by checks.rig_login_problems; nothing to read
    return res.secret_fields(key, group, ("password",), inline={"password": group.password or None})


def _profiles_dir(tables: dict[str, BaseModel], res: Resolver, problems: list[str]) -> Path | None:
    """[site] profiles_dir made absolute (and written back); it must be a folder."""
    site = tables.get("site")
    if not isinstance(site, SiteSettings) or site.profiles_dir is None:
        return None
    folder = res.path(site.profiles_dir)
    tables["site"] = site.model_copy(update={"profiles_dir": folder})
    if not folder.is_dir():
        problems.append(f"site.profiles_dir: {folder} is not a folder")
        return None
    return folder


def _with_profile_ref(meter: MeterSettings, checker: checks.ProfileChecker) -> MeterSettings:
    """The meter with its profile as the loader takes it (site-local file path or name)."""
    ref = checker.resolve(meter.profile)
    return meter if ref is None else meter.model_copy(update={"profile": ref})


def _with_rig_refs(
    group: RigGroupSettings, rigs: checks.ProfileChecker, registers: checks.ProfileChecker
) -> RigGroupSettings:
    profile = rigs.resolve(group.profile) or group.profile
    register_map = registers.resolve(group.register_map) or group.register_map
    if (profile, register_map) == (group.profile, group.register_map):
        return group
    # model_copy keeps the resolved password (a private attribute)
    return group.model_copy(update={"profile": profile, "register_map": register_map})


def _profile_problems(
    raw_meters: list[Mapping[str, Any]],
    raw_rigs: list[Mapping[str, Any]],
    checkers: tuple[checks.ProfileChecker, checks.ProfileChecker, checks.ProfileChecker],
) -> list[str]:
    """Every profile named anywhere, loaded once; checked even where the item is invalid."""
    meter_profiles, rig_profiles, register_maps = checkers
    problems = []
    for i, item in enumerate(raw_meters):
        problems.extend(meter_profiles.check(f"meters[{i}].profile", item.get("profile")))
    default_map = RigGroupSettings.model_fields["register_map"].default
    for i, item in enumerate(raw_rigs):
        problems.extend(rig_profiles.check(f"rigs[{i}].profile", item.get("profile")))
        if item.get("driver") == "modbus":
            name = item.get("register_map", default_map)
            problems.extend(register_maps.check(f"rigs[{i}].register_map", name))
    return problems


def _partial_rig_group(item: object) -> RigGroupSettings | None:
    """The hosts and port of a rig group that failed validation, if those two are usable."""
    if not isinstance(item, Mapping):
        return None
    hosts = item.get("hosts", [])
    port = item.get("port", 4028)
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        return None
    if not isinstance(port, int) or not 1 <= port <= 65535:
        port = -1  # matches no other group: no overlap reported on a wrong port
    return RigGroupSettings.model_construct(
        name="", driver="luxos", profile="", hosts=tuple(hosts), port=port
    )


def _validate(model: type[M], value: Mapping[str, Any], key: str, problems: list[str]) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError as e:
        problems.extend(translate(e, key, model))
        return None


def _resolve(key: str, section: BaseModel, res: Resolver) -> BaseModel:
    """Absolute paths and resolved secrets for one validated section."""
    if isinstance(section, StorageSettings):
        return section.model_copy(update={"path": res.path(section.path)})
    if isinstance(section, ApiSettings):
        return _resolve_api(section, res)
    if isinstance(section, AwardSettings) and section.inbox_dir is not None:
        return section.model_copy(update={"inbox_dir": res.path(section.inbox_dir)})
    # A disabled sink's secrets are not needed, so a missing env var there is no problem.
    if isinstance(section, InfluxSettings | MqttSettings) and not section.enabled:
        return section
    if isinstance(section, InfluxSettings):
        inline = {"token": section.token}  # the only secret that may be written in the file
        return res.secret_fields(key, section, ("token", "password"), inline=inline)
    if isinstance(section, MqttSettings):
        return res.secret_fields(key, section, ("password",))
    if isinstance(section, AlertSettings):
        return res.secret_fields(key, section, ("webhook_secret",))
    return section


def _resolve_api(api: ApiSettings, res: Resolver) -> ApiSettings:
    if (api.tls_cert_file is None) != (api.tls_key_file is None):
        res.problems.append("api.tls_key_file: tls_cert_file and tls_key_file go together")
    if api.client_ca_file is not None and api.tls_cert_file is None:
        res.problems.append("api.client_ca_file: needs tls_cert_file and tls_key_file")
    files = {
        name: res.existing_file(f"api.{name}", getattr(api, name))
        for name in ("tls_cert_file", "tls_key_file", "client_ca_file")
    }
    tokens = []
    first: dict[str, int] = {}
    for i, tok in enumerate(api.tokens):
        key = f"api.tokens[{i}]"
        if tok.name in first:
            res.problems.append(
                f"{key}.name: duplicate name '{tok.name}' (also api.tokens[{first[tok.name]}])"
            )
        first.setdefault(tok.name, i)
        if tok.sha256 is None and tok.sha256_file is None and tok.sha256_env is None:
            res.problems.append(f"{key}: missing required key sha256 (or sha256_file, sha256_env)")
            continue
        value, path = res.secret(key, "sha256", tok.sha256, tok.sha256_file, tok.sha256_env)
        out = tok.model_copy(update={"sha256_file": path})
        if value is not None:
            try:
                out._sha256 = normalize_sha256(value)
            except ValueError as e:
                where = "sha256_file" if tok.sha256_file else "sha256_env"
                res.problems.append(f"{key}.{where}: {e}")
        tokens.append(out)
    return api.model_copy(update={**files, "tokens": tuple(tokens)})
