"""Alert thresholds, hold/clear durations and channel settings, as frozen values.

The settings loader ([alerts] in the site TOML) builds these; every field has a default that
suits a typical air- or hydro-cooled container site.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RuleTiming:
    """Hysteresis of one rule: fire after the condition held `for_s`, resolve after it has
    been false for `clear_s`. A condition that toggles faster than `clear_s` stays one alert."""

    for_s: float
    clear_s: float


DEFAULT_TIMINGS: dict[str, RuleTiming] = {
    "RigOffline": RuleTiming(60.0, 60.0),
    "RigHashrateLow": RuleTiming(300.0, 120.0),
    "RigChipTempHigh": RuleTiming(30.0, 60.0),
    "RigFanFailure": RuleTiming(30.0, 60.0),
    "RigBoardDead": RuleTiming(120.0, 120.0),
    "RigIgnoresCommands": RuleTiming(60.0, 60.0),
    "MeterOffline": RuleTiming(10.0, 10.0),
    "MeterStale": RuleTiming(10.0, 10.0),
    "MeterFrozen": RuleTiming(0.0, 10.0),
    "MeterVoltageOutOfRange": RuleTiming(10.0, 30.0),
    "MeterPhaseImbalance": RuleTiming(60.0, 60.0),
    "QuotaBreach": RuleTiming(30.0, 10.0),
    "FailsafeEngaged": RuleTiming(0.0, 5.0),
    "SpoolFilling": RuleTiming(60.0, 60.0),
    "TsdbUnreachable": RuleTiming(60.0, 60.0),
    "StorageFailing": RuleTiming(0.0, 20.0),
    "AuthFailures": RuleTiming(0.0, 300.0),  # quiet for 5 min before it resolves
    "ClockStepped": RuleTiming(0.0, 60.0),
    # Judged once per closed settlement interval: fire at once, resolve when an interval
    # closes back in its band.
    "AwardShortfall": RuleTiming(0.0, 0.0),
    "AwardOverrun": RuleTiming(0.0, 0.0),
    "AwardOverrunCritical": RuleTiming(0.0, 0.0),
    "EnergyRegisterFault": RuleTiming(0.0, 10.0),
}


@dataclass(frozen=True)
class AlertThresholds:
    """Thresholds of the rules; timings override DEFAULT_TIMINGS per rule name.

    A container rule (ContainerRigsOffline...) uses the timing of its rig rule unless it is
    named in `timings` itself.
    """

    hashrate_min_ratio: float = 0.8  # of what the model curve / profile gives at its power
    hashrate_warmup_s: float = 600.0  # a rig that woke less than this ago is still ramping
    chip_temp_margin_c: float = 3.0  # fire this far below the model's protection trip
    chip_temp_limit_c: float | None = None  # absolute limit instead of the model's
    fan_min_ratio: float = 0.3  # of the model's nominal fan rpm
    meter_frozen_polls: int = 10  # identical values on this many successive reads
    voltage_min_v: float = 207.0  # 230 V -10 %
    voltage_max_v: float = 253.0  # 230 V +10 %
    phase_imbalance_ratio: float = 0.25  # (max - min) / mean of the phase currents
    phase_imbalance_min_a: float = 10.0  # below this mean current imbalance is noise
    spool_fill_ratio: float = 0.5
    auth_failures_per_min: int = 10  # wrong API tokens in a minute, all addresses
    group_min_rigs: int = 20  # this many rigs of one container with the same fault...
    group_min_ratio: float = 0.5  # ...or this fraction of the container...
    group_ratio_min_rigs: int = 3  # ...provided at least this many rigs are affected
    group_detail_rigs: int = 10  # rig ids listed in a container alert
    # A closed settlement interval against its energy award, % of the award:
    award_under_pct: float = 99.0  # under it (no power limit below the pace): AwardShortfall
    award_over_pct: float = 100.0  # over it: AwardOverrun (warning)
    award_over_critical_pct: float = 100.2  # over it: AwardOverrunCritical
    timings: dict[str, RuleTiming] = field(default_factory=dict)

    def timing(self, rule: str, fallback_rule: str | None = None) -> RuleTiming:
        if rule in self.timings:
            return self.timings[rule]
        if fallback_rule is not None and fallback_rule in self.timings:
            return self.timings[fallback_rule]
        if rule in DEFAULT_TIMINGS:
            return DEFAULT_TIMINGS[rule]
        if fallback_rule is not None and fallback_rule in DEFAULT_TIMINGS:
            return DEFAULT_TIMINGS[fallback_rule]
        raise KeyError(f"no timing for alert rule {rule}")


@dataclass(frozen=True)
class DeliverySettings:
    """Where alerts go. Every configured channel gets every change, in order."""

    alertmanager_urls: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_secret: bytes = b""  # read from webhook_secret_file by the loader
    mqtt_url: str | None = None  # "mqtt://host:port" or "mqtts://..."; None: no MQTT channel
    mqtt_username: str = ""
    mqtt_password: str | None = None
    mqtt_topic_prefix: str = "minerd"
    log: bool = True
    resend_interval_s: float = 60.0  # Alertmanager: resend firing alerts this often
    resolve_after_s: float = 240.0  # Alertmanager endsAt of a firing alert: now + this
    request_timeout_s: float = 5.0
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    poll_interval_s: float = 0.5  # how often the delivery task looks at the outbox
