"""The site config as pydantic models: structure, types and ranges only.

Checks that need several fields, the file system or the device profiles live in
minerd.settings.checks, so that every problem is reported at once with its key path.
Secrets given as *_file / *_env are resolved by the loader into private attributes,
read through the *_value properties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr

from minerd.settings.cluster import ClusterSettings
from minerd.settings.economics import EconomicsSettings
from minerd.settings.region import RegionSiteSettings
from minerd.transports.mqtt_url import MqttUrlError, parse_mqtt_url

# ---------------------------------------------------------------- field types

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Kilowatts = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=1, le=65535)]
UnitId = Annotated[int, Field(ge=0, le=247)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def parse_endpoint(value: str, schemes: tuple[str, ...]) -> tuple[str, str, int]:
    """Split 'scheme://host:port' and say precisely what is wrong; returns (scheme, host, port)."""
    want = " or ".join(f"{s}://host:port" for s in schemes)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"'{value}' is not a valid endpoint ({e}); expected {want}") from None
    if parts.scheme not in schemes or not parts.hostname or port is None:
        raise ValueError(f"'{value}' is not a valid endpoint; expected {want}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"'{value}' is not a valid endpoint; expected {want}")
    if port == 0:
        raise ValueError(f"'{value}': port 0 is out of range 1..65535")
    return parts.scheme, parts.hostname, port


def _tcp_endpoint(value: str) -> str:
    parse_endpoint(value, ("tcp",))
    return value


def _mqtt_url(value: str) -> str:
    try:
        parse_mqtt_url(value, "", require_port=True)
    except MqttUrlError as e:
        raise ValueError(e.detail) from None  # pydantic adds the key path
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"'{value}' is not a valid URL; expected http(s)://host[:port][/path]")
    try:
        _ = parts.port
    except ValueError as e:
        raise ValueError(f"'{value}' is not a valid URL ({e})") from None
    return value


def split_listen(value: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"'{value}' is not a valid listen address; expected host:port")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"'{value}': port {port} is out of range 1..65535")
    return host, port


def _listen(value: str) -> str:
    split_listen(value)
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{value}'") from None
    return value


def normalize_sha256(value: str) -> str:
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("must be 64 hexadecimal characters (a SHA-256 digest)")
    return text


def _name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


TcpEndpoint = Annotated[str, AfterValidator(_tcp_endpoint)]
MqttUrl = Annotated[str, AfterValidator(_mqtt_url)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
ListenAddress = Annotated[str, AfterValidator(_listen)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Sha256Hex = Annotated[str, AfterValidator(normalize_sha256)]
Name = Annotated[str, AfterValidator(_name)]


class Section(BaseModel):
    """Every config model: unknown keys are errors, values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# ---------------------------------------------------------------- sections


class SiteSettings(Section):
    name: Name
    timezone: TimeZoneName = "UTC"
    # Site-local device profiles, laid out like the shipped drivers/ (meters/, rigs/,
    # rigs/registers/) and searched before them; relative to the config file, absolute
    # after load. Survives package upgrades, unlike files added inside the package.
    profiles_dir: Path | None = None


class GridSettings(Section):
    contracted_limit_kw: Kilowatts
    failsafe_limit_kw: Kilowatts  # what the site falls to when the grid meter goes stale
    margin_kw: Kilowatts = 0.0
    settlement_interval_s: PositiveSeconds = 900.0
    # Fail-safe when the grid authority has not been heard from for this long; unset: off.
    quota_heartbeat_s: PositiveSeconds | None = None


class MeterSettings(Section):
    name: Name
    # A shipped name, a file name in [site] profiles_dir, or a path to a .toml file;
    # after load: the shipped name or the site-local file's absolute path.
    profile: Name
    endpoint: TcpEndpoint
    unit_id: UnitId = 1
    role: Literal["grid", "feeder", "aux"]
    container: str = ""
    interval_s: PositiveSeconds = 1.0
    timeout_s: PositiveSeconds = 0.5
    stale_after_s: PositiveSeconds = 5.0

    @property
    def host(self) -> str:
        return parse_endpoint(self.endpoint, ("tcp",))[1]

    @property
    def port(self) -> int:
        return parse_endpoint(self.endpoint, ("tcp",))[2]


class RigGroupSettings(Section):
    """A group of rigs of one model behind one driver, listed by hosts or by a CSV file."""

    name: Name
    driver: Literal["luxos", "cgminer", "modbus", "mqtt", "stock", "vnish", "whatsminer", "braiins"]
    profile: Name  # as MeterSettings.profile
    # IPs, CIDRs, ranges ("10.0.0.10-20") and host names, as minerd.devices.inventory expands
    hosts: tuple[str, ...] = ()
    csv: Path | None = None  # columns id,host,port,container; absolute after load
    port: Port = 4028
    container: str = ""
    unit_id: UnitId = 1
    register_map: Name = "container-plc-rig"  # driver modbus: rigs/registers/<name>.toml
    interval_s: PositiveSeconds = 15.0
    timeout_s: PositiveSeconds = 3.0
    password: str = ""  # LuxOS session password; empty means none
    topic_prefix: str = "rigs"
    # The rig's web/admin login (stock, vnish, whatsminer, braiins): password_file or
    # password_env (never inline for these), username empty = the family's default.
    password_file: Path | None = None
    password_env: str | None = None
    username: str = ""
    web_port: Port = 80  # stock CGI and Vnish REST
    api_port: Port = 4433  # Whatsminer API v3
    grpc_port: Port = 50051  # Braiins OS+ gRPC

    _password: str | None = PrivateAttr(default=None)

    @property
    def password_value(self) -> str | None:
        """The resolved secret (file or env), else the inline LuxOS password, else None."""
        return self._password if self._password is not None else (self.password or None)

    @property
    def username_value(self) -> str:
        return self.username or DEFAULT_RIG_USERNAMES.get(self.driver, "")

    def __repr_args__(self) -> Any:
        # The inline password never appears in a repr or a log line.
        return [(k, "***" if k == "password" and v else v) for k, v in super().__repr_args__()]


# Default logins per firmware family (reference/firmware-apis.md 3.1, 5.2, 6); Vnish and
# Whatsminer API v2 take a password only.
DEFAULT_RIG_USERNAMES: dict[str, str] = {"stock": "root", "whatsminer": "super", "braiins": "root"}
# Which extra port keys each driver uses; others refuse them so a typo'd group is caught.
RIG_PORT_KEYS: dict[str, tuple[str, ...]] = {
    "stock": ("web_port",),
    "vnish": ("web_port",),
    "whatsminer": ("api_port",),
    "braiins": ("grpc_port",),
}


class ControlSettings(Section):
    interval_s: PositiveSeconds = 1.0
    ramp_up_kw_per_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 500.0
    max_wakes_per_cycle: Annotated[int, Field(ge=1)] = 50
    min_on_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 300.0
    min_off_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 120.0
    aux_base_kw: Kilowatts = 0.0
    aux_fraction: Fraction = 0.0  # cooling and losses as a fraction of IT load
    kp: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.5
    ki: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.05
    command_concurrency: Annotated[int, Field(ge=1, le=10000)] = 200
    command_rate_per_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 500.0
    poll_concurrency: Annotated[int, Field(ge=1, le=10000)] = 1000


class ApiToken(Section):
    """A bearer token, stored as the SHA-256 of the secret (hex)."""

    name: Name
    role: Literal["grid", "operator", "viewer"]
    sha256: Sha256Hex | None = None
    sha256_file: Path | None = None
    sha256_env: str | None = None
    _sha256: str = PrivateAttr(default="")

    @property
    def sha256_value(self) -> str:
        """The resolved digest (lowercase hex), whichever way it was given."""
        return self._sha256 or (self.sha256 or "")


class ApiSettings(Section):
    listen: ListenAddress = "127.0.0.1:8080"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    metrics_auth: bool = False
    tokens: tuple[ApiToken, ...] = ()
    # Open connections at most; also bounded by the open-files limit left after rigs,
    # meters and storage, so the API can never take their file descriptors.
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    # A connection must send a request's headers this soon after connecting (or after the
    # previous answer), and its body this soon after the headers, or it is closed.
    header_timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 60.0
    keep_alive_s: Annotated[int, Field(ge=1, le=3600)] = 5  # idle time between requests

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class InfluxSettings(Section):
    enabled: bool = False
    api: Literal["v2", "v1"] = "v2"
    url: HttpUrl = "http://127.0.0.1:8086"
    org: str = ""
    bucket: str = "minerd"
    token: str | None = None
    token_file: Path | None = None
    token_env: str | None = None
    database: str = "minerd"  # v1
    retention_policy: str = ""  # v1
    username: str = ""  # v1
    password_file: Path | None = None
    password_env: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    flush_interval_s: PositiveSeconds = 1.0
    _token: str | None = PrivateAttr(default=None)
    _password: str | None = PrivateAttr(default=None)

    @property
    def token_value(self) -> str | None:
        return self._token if self._token is not None else self.token

    @property
    def password_value(self) -> str | None:
        return self._password


class MqttSettings(Section):
    enabled: bool = False
    url: MqttUrl = "mqtt://127.0.0.1:1883"
    username: str = ""
    password_file: Path | None = None
    password_env: str | None = None
    topic_prefix: str = "minerd"
    per_rig_state: bool = False
    quota_input: bool = False
    _password: str | None = PrivateAttr(default=None)

    @property
    def password_value(self) -> str | None:
        return self._password

    @property
    def host(self) -> str:
        return parse_mqtt_url(self.url).host

    @property
    def port(self) -> int:
        return parse_mqtt_url(self.url).port

    @property
    def tls(self) -> bool:
        return parse_mqtt_url(self.url).tls


class PrometheusSettings(Section):
    enabled: bool = True  # served by the api at /metrics
    per_rig_series: Literal["auto", "on", "off"] = "auto"


class AlertSettings(Section):
    alertmanager_urls: tuple[HttpUrl, ...] = ()
    webhook_url: HttpUrl | None = None
    webhook_secret_file: Path | None = None
    webhook_secret_env: str | None = None
    mqtt: bool = False  # also publish alerts on <mqtt.topic_prefix>/alerts
    # thresholds
    meter_stale_after_s: PositiveSeconds = 10.0
    over_limit_for_s: PositiveSeconds = 30.0
    headroom_warn_kw: Kilowatts = 0.0
    rigs_offline_fraction: Fraction = 0.1
    rig_unresponsive_after_s: PositiveSeconds = 120.0
    chip_temp_warn_c: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 85.0
    repeat_interval_s: PositiveSeconds = 3600.0
    _webhook_secret: str | None = PrivateAttr(default=None)

    @property
    def webhook_secret_value(self) -> str | None:
        return self._webhook_secret


class StorageSettings(Section):
    path: Path = Path("minerd.sqlite")  # relative to the config file's directory
    spool_max_points: Annotated[int, Field(ge=0)] = 1_000_000


def _divides_day(interval_s: float) -> float:
    if interval_s != int(interval_s) or 86_400 % int(interval_s):
        raise ValueError("must divide a day (86400 s) in whole seconds: 900, 1800, 3600...")
    return interval_s


class AwardSettings(Section):
    """Energy awards per settlement interval (day-ahead market, issue 15).

    Intervals are counted in real seconds from local midnight in [site] timezone, so a
    DST day has 23 or 25 hourly intervals, as the market counts them."""

    interval_s: Annotated[
        float, Field(ge=60, le=86_400, allow_inf_nan=False), AfterValidator(_divides_day)
    ] = 3600.0
    # A folder polled for *.csv / *.json award files (a market export handed on); unset:
    # off. Relative to the config file; processed/ and rejected/ are made inside it.
    inbox_dir: Path | None = None
    inbox_poll_s: PositiveSeconds = 10.0


# ---------------------------------------------------------------- grid protocols

IoAddress = Annotated[int, Field(ge=1, le=16_777_215)]  # IEC 104 information object address
Iec104Measure = Literal["M_ME_TF_1", "M_ME_NC_1", "M_ME_TE_1", "M_ME_NB_1"]
Iec104Single = Literal["M_SP_TB_1", "M_SP_NA_1"]


class Iec104Analog(Section):
    """A measured value: wire value = value x scale (M_ME_TE_1/NB_1 round to an integer);
    sent spontaneously when it moves by more than deadband (in the value's own unit)."""

    ioa: IoAddress
    type: Iec104Measure = "M_ME_TF_1"
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    deadband: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0


class Iec104Status(Section):
    ioa: IoAddress
    type: Iec104Single = "M_SP_TB_1"


class Iec104Points(Section):
    """The point map (defaults documented in docs/grid-api.md)."""

    grid_import_kw: Iec104Analog = Iec104Analog(ioa=1001, deadband=5.0)
    limit_kw: Iec104Analog = Iec104Analog(ioa=1002)
    limit_origin: Iec104Analog = Iec104Analog(ioa=1003)  # 0 contract 1 quota 2 cap 3 fail-safe
    rig_power_kw: Iec104Analog = Iec104Analog(ioa=1004, deadband=5.0)
    hashrate_ths: Iec104Analog = Iec104Analog(ioa=1005, deadband=50.0)
    setpoint_kw: Iec104Analog = Iec104Analog(ioa=1006)  # the IEC 104 setpoint in force
    # Site import kW that can be shed within 5 s / 60 s / 10 min (control.shed_capacity).
    shed_5s_kw: Iec104Analog = Iec104Analog(ioa=1007, deadband=5.0)
    shed_60s_kw: Iec104Analog = Iec104Analog(ioa=1008, deadband=5.0)
    shed_600s_kw: Iec104Analog = Iec104Analog(ioa=1009, deadband=5.0)
    failsafe: Iec104Status = Iec104Status(ioa=1101)
    grid_fresh: Iec104Status = Iec104Status(ioa=1102)
    setpoint_ioa: IoAddress = 2001  # C_SE_NC_1, short float, kW x setpoint_scale
    setpoint_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    withdraw_ioa: IoAddress = 2002  # C_SC_NA_1, ON withdraws the setpoint

    def addresses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Iec104Analog | Iec104Status):
                out[name] = value.ioa
        out["setpoint_ioa"] = self.setpoint_ioa
        out["withdraw_ioa"] = self.withdraw_ioa
        return out


class Iec104Settings(Section):
    """minerd as an IEC 60870-5-104 controlled station (outstation); off by default."""

    enabled: bool = False
    listen: ListenAddress = "0.0.0.0:2404"
    common_address: Annotated[int, Field(ge=1, le=65534)] = 1
    # Only these client IPs may connect; others are refused and logged. Required when on.
    allowed_clients: tuple[str, ...] = ()
    period_s: PositiveSeconds = 2.0  # cyclic transmission (COT 1)
    commands: bool = True  # false: monitoring only, every command is refused
    select_before_execute: bool = False
    setpoint_min_kw: Kilowatts = 0.0
    setpoint_max_kw: Kilowatts | None = None  # unset: the contracted limit
    setpoint_duration_s: PositiveSeconds | None = None  # unset: until withdrawn or replaced
    points: Iec104Points = Iec104Points()


class OpenAdrSettings(Section):
    """minerd as an OpenADR 2.0b VEN; off by default."""

    enabled: bool = False
    vtn_url: HttpUrl = "http://127.0.0.1:8000/OpenADR2/Simple/2.0b"
    ven_name: Name = "minerd"
    ven_id: str = ""  # empty: the VTN assigns one at registration
    cert_file: Path | None = None  # PEM, signs messages and authenticates over TLS
    key_file: Path | None = None
    ca_file: Path | None = None
    vtn_fingerprint: str = ""  # checks the VTN's signature when set
    opt: Literal["in", "out"] = "in"
    # SIMPLE level -> limit in kW; a level not listed (normally 0) sets no limit.
    simple_level_kw: dict[Annotated[int, Field(ge=0, le=3)], Kilowatts] = {}
    report_interval_s: PositiveSeconds = 10.0  # TELEMETRY_USAGE sampling offered to the VTN


class Settings(Section):
    """The whole site config. Build it with minerd.settings.load_settings."""

    site: SiteSettings
    grid: GridSettings
    meters: tuple[MeterSettings, ...]
    rigs: tuple[RigGroupSettings, ...] = ()
    control: ControlSettings = ControlSettings()
    api: ApiSettings = ApiSettings()
    influx: InfluxSettings = InfluxSettings()
    mqtt: MqttSettings = MqttSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alerts: AlertSettings = AlertSettings()
    storage: StorageSettings = StorageSettings()
    awards: AwardSettings = AwardSettings()
    economics: EconomicsSettings = EconomicsSettings()
    iec104: Iec104Settings = Iec104Settings()
    openadr: OpenAdrSettings = OpenAdrSettings()
    cluster: ClusterSettings = ClusterSettings()
    region: RegionSiteSettings = RegionSiteSettings()  # [region]: the regional coordinator
    source: Path | None = None  # the file this was loaded from (set by the loader)

    @property
    def grid_meters(self) -> tuple[MeterSettings, ...]:
        return tuple(m for m in self.meters if m.role == "grid")
