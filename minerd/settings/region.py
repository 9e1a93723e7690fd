"""The region (issue 16 item 3): a site's [region] table, and the coordinator's region.toml.

Site side, `[region]` in the site config: the site takes the regional coordinator's
allocation as one more limit (the lower of all limits wins) and publishes its offer.
Absent (or no `name`): the site answers to no region.

Coordinator side, `minerd coordinator --config region.toml`:

    [region]
    name = "alatau"                 # subject token, the same in every site's [region]
    nats_url = "nats://127.0.0.1:4222"
    limit_kw = 20000                # the regional limit; changed at runtime over NATS

    [coordinator]
    id = "coord-a"                  # each standby its own
    lease_s = 30                    # an allocation's lease
    interval_s = 5                  # a round: split and send every allocation
    site_silent_s = 15              # no offer for this long: the site is reserved, not split
    leader_ttl_s = 6                # leadership key TTL (one coordinator sends at a time)
    regive_slack_s = 10             # a silent site's energy is re-given this long past its lease
    audit_db = "region-audit.sqlite"
    control_token_env = "MINERD_REGION_TOKEN"   # or control_token_file
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, Field, ValidationError, model_validator

from minerd.errors import ConfigError
from minerd.settings.cluster import NatsUrl, Section, Token
from minerd.settings.problems import translate
from minerd.settings.secrets import Resolver


class RegionSiteSettings(Section):
    """A site's [region] table."""

    name: Token | None = None  # the region; unset: the site answers to no region
    nats_url: NatsUrl = "nats://127.0.0.1:4222"
    site: Token | None = None  # this site's token; unset: [cluster] site, else [site] name
    offer_interval_s: Annotated[float, Field(ge=0.2, le=60.0, allow_inf_nan=False)] = 5.0

    @property
    def enabled(self) -> bool:
        return self.name is not None

    def describe(self) -> str:
        if self.name is None:
            return "no region"
        return f"region {self.name} on {self.nats_url}, offer every {self.offer_interval_s:g} s"


class RegionTable(Section):
    name: Token
    nats_url: NatsUrl = "nats://127.0.0.1:4222"
    limit_kw: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class CoordinatorTable(Section):
    id: Token = "coordinator"
    lease_s: Annotated[float, Field(ge=2.0, le=3600.0, allow_inf_nan=False)] = 30.0
    interval_s: Annotated[float, Field(ge=0.2, le=600.0, allow_inf_nan=False)] = 5.0
    site_silent_s: Annotated[float, Field(gt=0.0, le=3600.0, allow_inf_nan=False)] = 15.0
    leader_ttl_s: Annotated[float, Field(ge=1.0, le=60.0, allow_inf_nan=False)] = 6.0
    # Re-giving a silent site's energy waits this long past its last lease: the most a site's
    # clock may run behind the coordinator's (NTP keeps it to well under a second).
    regive_slack_s: Annotated[float, Field(ge=0.0, le=600.0, allow_inf_nan=False)] = 10.0
    audit_db: Path = Path("region-audit.sqlite")
    control_token_file: Path | None = None
    control_token_env: str | None = None

    @model_validator(mode="after")
    def _rounds(self) -> Self:
        if self.interval_s * 2 > self.lease_s:
            raise ValueError(
                "lease_s must be at least 2 x interval_s (a lost round must not end a lease)"
            )
        return self


class CoordinatorSettings(BaseModel):
    region: RegionTable
    coordinator: CoordinatorTable = CoordinatorTable()
    control_token: str | None = None  # resolved from the file or environment


def load_region_config(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> CoordinatorSettings:
    """region.toml, checked; raises ConfigError listing every problem with its key."""
    p = Path(path)
    source = str(p)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"file not found: {p}"], source) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError([f"cannot read: {e}"], source) from None
    problems: list[str] = []
    unknown = sorted(set(raw) - {"region", "coordinator"})
    problems += [f"{k}: unknown table (expected [region] and [coordinator])" for k in unknown]
    region: RegionTable | None = None
    coord = CoordinatorTable()
    if "region" not in raw:
        problems.append("region: missing table [region] (name, limit_kw)")
    else:
        try:
            region = RegionTable.model_validate(raw["region"])
        except ValidationError as e:
            problems += translate(e, "region", RegionTable)
    try:
        coord = CoordinatorTable.model_validate(raw.get("coordinator", {}))
    except ValidationError as e:
        problems += translate(e, "coordinator", CoordinatorTable)
    res = Resolver(p.parent.resolve(), os.environ if environ is None else environ)
    token, _ = res.secret(
        "coordinator",
        "control_token",
        None,
        coord.control_token_file,
        coord.control_token_env,
        inline_allowed=False,
    )
    problems += res.problems
    if problems or region is None:
        raise ConfigError(problems, source)
    coord = coord.model_copy(update={"audit_db": res.path(coord.audit_db)})
    return CoordinatorSettings(region=region, coordinator=coord, control_token=token)
