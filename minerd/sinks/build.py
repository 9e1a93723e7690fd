"""Build the InfluxDB sink from the `[influx]` settings (secrets already resolved by the app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from minerd.errors import SinkError
from minerd.sinks.influx import InfluxSink, InfluxSinkConfig
from minerd.sinks.points import PointEncoder
from minerd.sinks.writers import LineWriter, V1Target, V1Writer, V2Target, V2Writer
from minerd.storage.db import Database
from minerd.storage.spool import TelemetrySpool


class InfluxSection(Protocol):
    """What build reads from minerd.settings' `[influx]` model (sinks do not import it)."""

    @property
    def api(self) -> Literal["v2", "v1"]: ...
    @property
    def url(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def token_value(self) -> str | None: ...
    @property
    def database(self) -> str: ...
    @property
    def retention_policy(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password_value(self) -> str | None: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def flush_interval_s(self) -> float: ...


@dataclass(frozen=True)
class InfluxOptions:
    """The `[influx]` table with token and password already read from their file or env."""

    url: str
    api: Literal["v2", "v1"] = "v2"
    org: str = ""
    bucket: str = ""
    token: str = ""
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    gzip: bool = True
    timeout_s: float = 10.0
    rig_interval_s: float = 15.0

    @classmethod
    def from_section(cls, section: InfluxSection) -> InfluxOptions:
        return cls(
            url=str(section.url),
            api=section.api,
            org=section.org,
            bucket=section.bucket,
            token=section.token_value or "",
            database=section.database,
            retention_policy=section.retention_policy,
            username=section.username,
            password=section.password_value or "",
            batch_size=section.batch_size,
            flush_interval_s=section.flush_interval_s,
        )


def build_writer(s: InfluxOptions) -> LineWriter:
    if s.api == "v2":
        if not s.bucket:
            raise SinkError("influx", "api v2 needs a bucket")
        return V2Writer(
            V2Target(s.url, s.org, s.bucket, s.token), gzip_body=s.gzip, timeout_s=s.timeout_s
        )
    if not s.database:
        raise SinkError("influx", "api v1 needs a database")
    target = V1Target(s.url, s.database, s.retention_policy, s.username, s.password)
    return V1Writer(target, gzip_body=s.gzip, timeout_s=s.timeout_s)


def build_influx_sink(
    site: str, settings: InfluxOptions, db: Database, spool_max_points: int
) -> InfluxSink:
    """The sink with its spool (table telemetry_spool, rows of sink "influx").

    spool_max_points = 0 disables the spool: batches that fail are dropped and counted."""
    config = InfluxSinkConfig(
        batch_size=settings.batch_size,
        flush_interval_s=settings.flush_interval_s,
        rig_interval_s=settings.rig_interval_s,
    )
    spool = TelemetrySpool(db, "influx", spool_max_points)
    return InfluxSink(build_writer(settings), spool, PointEncoder(site), config)
