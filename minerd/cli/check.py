"""`minerd check`: load the config and every profile it names; print a summary or every problem."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import IO

from minerd.devices.inventory import read_inventory_csv
from minerd.errors import ConfigError
from minerd.profiles.loader import profile_name
from minerd.settings import Settings, load_settings
from minerd.settings.hosts import host_count

EXIT_OK = 0
EXIT_CONFIG = 2


def rig_count(group_hosts: tuple[str, ...], csv: Path | None) -> int:
    """Rigs in a group, as minerd.devices.inventory expands them (CIDRs are not expanded)."""
    if csv is not None:
        return len(read_inventory_csv(csv))
    return host_count(group_hosts)


def summary(settings: Settings) -> str:
    """A short human summary of a loaded config."""
    s = settings
    lines = [
        f"site: {s.site.name} ({s.site.timezone})",
        f"grid: contracted {s.grid.contracted_limit_kw:g} kW, fail-safe"
        f" {s.grid.failsafe_limit_kw:g} kW, margin {s.grid.margin_kw:g} kW,"
        f" settlement {s.grid.settlement_interval_s:g} s",
        f"meters: {len(s.meters)}",
    ]
    for m in s.meters:
        lines.append(f"  {m.name}: {m.role} {_profile(m.profile)} {m.endpoint} unit {m.unit_id}")
    by_model: Counter[str] = Counter()
    group_lines = []
    for g in s.rigs:
        n = rig_count(g.hosts, g.csv)
        by_model[profile_name(g.profile)] += n
        group_lines.append(f"  {g.name}: {n} x {_profile(g.profile)} via {g.driver}")
    lines.append(f"rigs: {sum(by_model.values())} in {len(s.rigs)} groups")
    lines.extend(f"  {model}: {count}" for model, count in sorted(by_model.items()))
    lines.append("rig groups:")
    lines.extend(group_lines or ["  (none)"])
    scheme = "https" if s.api.tls else "http"
    lines.append("listeners:")
    lines.append(f"  api: {scheme}://{s.api.listen} ({len(s.api.tokens)} tokens)")
    metrics = f"{scheme}://{s.api.listen}/metrics" if s.prometheus.enabled else "off"
    lines.append(f"  metrics: {metrics}")
    lines.append(f"  mqtt: {s.mqtt.url if s.mqtt.enabled else 'off'}")
    lines.append(f"influx: {f'{s.influx.url} ({s.influx.api})' if s.influx.enabled else 'off'}")
    lines.append(f"storage: {s.storage.path}")
    lines.append(f"cluster: {s.cluster.describe()}")
    if s.region.enabled:
        lines.append(f"region: {s.region.describe()}")
    if s.site.profiles_dir is not None:
        lines.append(f"site profiles: {s.site.profiles_dir} (searched before the shipped ones)")
    return "\n".join(lines)


def _profile(ref: str) -> str:
    """A shipped profile by name; a site-local one by name and file, so the summary says
    which file will be used."""
    name = profile_name(ref)
    return name if name == ref else f"{name} ({ref})"


def run_check(path: str | Path, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Exit code 0 with a summary on out, or 2 with one problem per line on err."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        settings = load_settings(path)
    except ConfigError as e:
        n = len(e.problems)
        print(f"{e.source or path}: {n} problem{'s' if n != 1 else ''}", file=err)
        for problem in e.problems:
            print(problem, file=err)
        return EXIT_CONFIG
    print(f"{path}: ok", file=out)
    print(summary(settings), file=out)
    return EXIT_OK
