"""Write the daemon's site config for a simulated site, with generated API tokens.

PATH gets the TOML config, PATH.tokens the plain tokens (mode 0600) whose sha256 are in the
config, and one CSV inventory per rig group next to it so rig ids match the simulator's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minerd.model import RigProtocol
from minerd.sim.family_base import PORT_KEYS, SIM_LOGINS
from minerd.sim.meters import MeterSim
from minerd.sim.spec import TCP_PROTOCOLS, RigPlan, SiteSpec

ROLES = ("grid", "operator", "viewer")


class SimLayout(Protocol):
    """What the config is written from (SimSite is one): the site imports this module, so
    this module names only that shape, not the site (no import circle)."""

    @property
    def spec(self) -> SiteSpec: ...
    @property
    def plans(self) -> list[RigPlan]: ...
    @property
    def meters(self) -> Mapping[str, MeterSim]: ...
    @property
    def nominal_w(self) -> float: ...
    def aux_w(self, rig_power_w: float) -> float: ...
    def rig_endpoint(self, rig_id: str) -> tuple[str, int]: ...


@dataclass(frozen=True)
class SiteTokens:
    """The plain bearer tokens written to PATH.tokens, one per API role."""

    grid: str
    operator: str
    viewer: str
    path: Path


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _num(value: float) -> str:
    return repr(round(float(value), 3))


def write_site_config(site: SimLayout, path: Path, api_listen: str) -> SiteTokens:
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = site.spec
    tokens = {role: secrets.token_urlsafe(24) for role in ROLES}
    lines: list[str] = [
        "# Written by `minerd sim --write-config`: the daemon's view of a simulated site.",
        "[site]",
        f"name = {_q(spec.name)}",
        'timezone = "UTC"',
        "",
    ]
    nominal_kw = site.nominal_w / 1000.0
    full_kw = (site.nominal_w + site.aux_w(site.nominal_w)) / 1000.0
    lines += [
        "[grid]",
        f"contracted_limit_kw = {_num(max(1.0, full_kw * 1.05))}",
        f"failsafe_limit_kw = {_num(max(1.0, full_kw * 0.5))}",
        f"margin_kw = {_num(max(0.5, nominal_kw * 0.01))}",
        "settlement_interval_s = 900.0",
        "",
    ]
    for m in site.meters.values():
        lines += [
            "[[meters]]",
            f"name = {_q(m.name)}",
            f"profile = {_q(m.regmap.name)}",
            f"endpoint = {_q(f'tcp://{m.host}:{m.port}')}",
            f"unit_id = {m.unit_id}",
            f"role = {_q(m.role.value)}",
            f"container = {_q(m.container)}",
            "",
        ]
    lines += _rig_groups(site, path)
    # cooling plus copper losses at nominal load, as one fraction of IT load for the planner
    aux_fraction = spec.aux_fraction + spec.transformer_loss_fraction
    lines += [
        "[control]",
        f"aux_base_kw = {_num(spec.aux_base_w / 1000.0)}",
        f"aux_fraction = {_num(aux_fraction)}",
        "",
        "[api]",
        f"listen = {_q(api_listen)}",
        "",
    ]
    for role in ROLES:
        digest = hashlib.sha256(tokens[role].encode()).hexdigest()
        lines += [
            "[[api.tokens]]",
            f"name = {_q('sim-' + role)}",
            f"role = {_q(role)}",
            f"sha256 = {_q(digest)}",
            "",
        ]
    if spec.mqtt_url and any(p.protocol is RigProtocol.MQTT for p in site.plans):
        lines += ["[mqtt]", "enabled = true", f"url = {_q(spec.mqtt_url)}", ""]
    lines += ["[storage]", f"path = {_q(path.with_suffix('.sqlite').name)}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    token_path = Path(str(path) + ".tokens")
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# Plain API bearer tokens for this simulated site. Keep private.\n")
        for role in ROLES:
            f.write(f"{role} = {_q(tokens[role])}\n")
    os.chmod(token_path, 0o600)
    return SiteTokens(tokens["grid"], tokens["operator"], tokens["viewer"], token_path)


def _login_lines(protocol: RigProtocol, plan: RigPlan, password_path: Path) -> list[str]:
    """A login family's password file (0600, beside the tokens) and its extra port."""
    login = SIM_LOGINS.get(protocol.value)
    if login is None:
        return []
    _write_private(password_path, login[1] + "\n")
    lines = [f"password_file = {_q(password_path.name)}"]
    if plan.family_port:  # an ephemeral per-rig port cannot be one group key
        lines.append(f"{PORT_KEYS[protocol.value]} = {plan.family_port}")
    return lines


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _rig_groups(site: SimLayout, path: Path) -> list[str]:
    lines: list[str] = []
    groups: dict[tuple[RigProtocol, str], list[RigPlan]] = {}
    for plan in site.plans:
        groups.setdefault((plan.protocol, plan.model), []).append(plan)
    for (protocol, model), plans in groups.items():
        name = f"{protocol.value}-{model}"
        if protocol is RigProtocol.MODBUS:
            for plan in plans:
                host, port = site.rig_endpoint(plan.rig_id)
                lines += [
                    "[[rigs]]",
                    f"name = {_q(plan.rig_id)}",
                    'driver = "modbus"',
                    f"profile = {_q(model)}",
                    f"hosts = [{_q(host)}]",
                    f"port = {port}",
                    f"unit_id = {plan.unit_id}",
                    f"container = {_q(plan.container_name)}",
                    "",
                ]
            continue
        csv_path = path.with_name(f"{path.stem}-{name}.csv")
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "host", "port", "container"])
            for plan in plans:
                if protocol in TCP_PROTOCOLS:
                    host, port = site.rig_endpoint(plan.rig_id)
                    writer.writerow([plan.rig_id, host, port, plan.container_name])
                else:  # MQTT rigs have no socket of their own; the host only keeps ids unique
                    writer.writerow([plan.rig_id, plan.host, "", plan.container_name])
        lines += [
            "[[rigs]]",
            f"name = {_q(name)}",
            f"driver = {_q(protocol.value)}",
            f"profile = {_q(model)}",
            f"csv = {_q(csv_path.name)}",
        ]
        if protocol is RigProtocol.MQTT:
            lines.append(f"topic_prefix = {_q(site.spec.mqtt_prefix)}")
        lines += _login_lines(protocol, plans[0], path.with_name(f"{path.stem}-{name}.password"))
        lines.append("")
    return lines
