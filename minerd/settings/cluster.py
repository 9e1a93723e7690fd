"""[cluster]: one site split over processes on NATS (issue 16): the site controller and
poller shards. role = "single" (the default) is the one-process daemon, nothing else here
is read.

Which rigs a shard owns: the rig groups it names (`rig_groups`), or else a stable hash of
the rig id, crc32(rig_id) mod the number of `shards`, the shard's place in that list. The
hash is the default because it spreads every group evenly over the shards, gives the same
answer on every machine and Python run (Python's hash() is salted) and needs no config when
rigs are added; groups suit a shard per network segment or container row.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Section(BaseModel):
    """As settings.models.Section (models imports this module, so it is spelled here)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _token(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} must be 1-64 of A-Z a-z 0-9 _ - (one NATS subject token)")
    return value


def _nats_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"'{value}' is not a valid URL ({e})") from None
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ValueError(f"'{value}' is not a NATS URL; expected nats://host[:port]")
    return value


Token = Annotated[str, AfterValidator(_token)]
NatsUrl = Annotated[str, AfterValidator(_nats_url)]


class ClusterSettings(Section):
    role: Literal["single", "controller", "shard"] = "single"
    nats_url: NatsUrl = "nats://127.0.0.1:4222"
    site: Token | None = None  # the site's token in subjects; unset: [site] name
    shards: tuple[Token, ...] = ()  # every shard of the site, in a fixed order
    shard_id: Token | None = None  # this process, when role = "shard"
    rig_groups: tuple[str, ...] = ()  # the shard's rig groups; empty: by hash of the rig id
    controller_id: Token | None = None  # unset: "controller"; standbys need their own
    lease_ttl_s: Annotated[float, Field(ge=1.0, le=60.0, allow_inf_nan=False)] = 3.0
    # Cycles a shard holds its last budget before its fail-safe share (docs/scale.md).
    hold_cycles: Annotated[int, Field(ge=1, le=10)] = 3

    @model_validator(mode="after")
    def _roles(self) -> Self:
        if self.role == "single":
            return self
        if not self.shards:
            raise ValueError(f'role = "{self.role}" needs shards = [...] (every shard id)')
        if len(set(self.shards)) != len(self.shards):
            raise ValueError("shards: the same shard id is listed twice")
        if self.role == "shard":
            if self.shard_id is None:
                raise ValueError('role = "shard" needs shard_id')
            if self.shard_id not in self.shards:
                raise ValueError(f"shard_id {self.shard_id!r} is not in shards")
        elif self.shard_id is not None or self.rig_groups:
            raise ValueError('shard_id and rig_groups are for role = "shard" only')
        return self

    def describe(self) -> str:
        """One line for `minerd check`."""
        if self.role == "single":
            return "single process"
        site = self.site or "[site] name"
        head = f"{self.role} of site {site} on {self.nats_url}, shards {', '.join(self.shards)}"
        if self.role == "controller":
            return f"{head}, lease ttl {self.lease_ttl_s:g} s"
        by = f"groups {', '.join(self.rig_groups)}" if self.rig_groups else "crc32(rig id)"
        return f"{head}; this is {self.shard_id}, rigs by {by}, hold {self.hold_cycles} cycles"

    def owns(self, rig_id: str, group: str) -> bool:
        """This shard polls and commands the rig (role = "shard" only)."""
        if self.rig_groups:
            return group in self.rig_groups
        return self.shards[shard_index(rig_id, len(self.shards))] == self.shard_id


def shard_index(rig_id: str, shards: int) -> int:
    """The stable hash of the rig id over the shards (the same on every machine)."""
    return zlib.crc32(rig_id.encode()) % shards


def check_cluster(
    tables: Mapping[str, BaseModel], rig_groups: Sequence[str], problems: list[str]
) -> None:
    """What [cluster] says against the other sections: the site token, the rig groups."""
    cluster = tables.get("cluster")
    if not isinstance(cluster, ClusterSettings) or cluster.role == "single":
        return
    site = tables.get("site")
    name = getattr(site, "name", None)
    if cluster.site is None and isinstance(name, str) and not _TOKEN.match(name):
        problems.append(
            f"cluster.site: [site] name {name!r} is not one NATS subject token "
            "(1-64 of A-Z a-z 0-9 _ -); set cluster.site"
        )
    for g in cluster.rig_groups:
        if g not in rig_groups:
            problems.append(f"cluster.rig_groups: {g!r} is not a [[rigs]] group name")
