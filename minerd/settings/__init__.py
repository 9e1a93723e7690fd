"""The site config: pydantic models and the loader that reports every problem at once."""

from minerd.settings.loader import load_settings, settings_from_dict
from minerd.settings.models import (
    AlertSettings,
    ApiSettings,
    ApiToken,
    ControlSettings,
    GridSettings,
    InfluxSettings,
    MeterSettings,
    MqttSettings,
    PrometheusSettings,
    RigGroupSettings,
    Settings,
    SiteSettings,
    StorageSettings,
)

__all__ = [
    "AlertSettings",
    "ApiSettings",
    "ApiToken",
    "ControlSettings",
    "GridSettings",
    "InfluxSettings",
    "MeterSettings",
    "MqttSettings",
    "PrometheusSettings",
    "RigGroupSettings",
    "Settings",
    "SiteSettings",
    "StorageSettings",
    "load_settings",
    "settings_from_dict",
]
