"""Checks of [iec104] and [openadr] that need more than one field, the file system or an
installed package (both protocols are optional extras: pip install 'minerd[grid]')."""

from __future__ import annotations

import importlib.util
import ipaddress
from collections import Counter
from collections.abc import MutableMapping
from pathlib import Path

from pydantic import BaseModel

from minerd.settings.models import Iec104Settings, OpenAdrSettings

EXTRA_HINT = "install the optional extra: pip install 'minerd[grid]'"


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def iec104_problems(s: Iec104Settings) -> list[str]:
    if not s.enabled:
        return []
    problems: list[str] = []
    if not _installed("c104"):
        problems.append(f"iec104.enabled: needs the c104 package; {EXTRA_HINT}")
    if not s.allowed_clients:
        problems.append(
            "iec104.allowed_clients: list the SCADA's IP addresses (connections from any "
            "other address are refused)"
        )
    for i, ip in enumerate(s.allowed_clients):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            problems.append(f"iec104.allowed_clients[{i}]: '{ip}' is not an IP address")
    counts = Counter(s.points.addresses().values())
    for name, ioa in s.points.addresses().items():
        if counts[ioa] > 1:
            problems.append(f"iec104.points.{name}: IOA {ioa} is used by more than one point")
    hi = s.setpoint_max_kw
    if hi is not None and hi < s.setpoint_min_kw:
        problems.append("iec104.setpoint_max_kw: must not be below setpoint_min_kw")
    return problems


def openadr_problems(s: OpenAdrSettings) -> list[str]:
    if not s.enabled:
        return []
    problems: list[str] = []
    if not _installed("openleadr"):
        problems.append(f"openadr.enabled: needs the openleadr package; {EXTRA_HINT}")
    if (s.cert_file is None) != (s.key_file is None):
        problems.append("openadr.cert_file: cert_file and key_file go together")
    for key in ("cert_file", "key_file", "ca_file"):
        path = getattr(s, key)
        if path is not None and not path.is_file():
            problems.append(f"openadr.{key}: file not found: {path}")
    return problems


def check_grid_protocols(
    tables: MutableMapping[str, BaseModel], base_dir: Path, problems: list[str]
) -> None:
    """Make [openadr] file paths absolute (from the config's directory), then check both."""
    iec = tables.get("iec104")
    if isinstance(iec, Iec104Settings):
        problems.extend(iec104_problems(iec))
    adr = tables.get("openadr")
    if isinstance(adr, OpenAdrSettings):
        paths = {
            key: base_dir / path
            for key in ("cert_file", "key_file", "ca_file")
            if (path := getattr(adr, key)) is not None
        }
        adr = adr.model_copy(update=paths)
        tables["openadr"] = adr
        problems.extend(openadr_problems(adr))
