"""The one parser of broker URLs: `mqtt://host:port` or `mqtts://host:port` (TLS).

Stdlib and minerd.errors only, so the settings models, sinks, alerts, the API's MQTT
input, the assembly and the simulator can all use it without pulling in aiomqtt.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from minerd.errors import ConfigError

__all__ = ["DEFAULT_PORTS", "MqttUrl", "MqttUrlError", "parse_mqtt_url"]

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_EXPECTED = "expected mqtt://host:port or mqtts://host:port"


class MqttUrlError(ConfigError):
    """A broker URL is wrong; `detail` is the message without the key path."""

    def __init__(self, key: str, detail: str) -> None:
        self.key = key
        self.detail = detail
        super().__init__([f"{key}: {detail}" if key else detail])


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool  # mqtts: verify the broker against the system CAs

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context() if self.tls else None


def parse_mqtt_url(url: str, key: str = "mqtt.url", *, require_port: bool = False) -> MqttUrl:
    """Split a broker URL or raise MqttUrlError naming `key` and what is wrong.

    Without a port, mqtt means 1883 and mqtts 8883 (unless require_port, as the config
    file does, so that the port a site uses is always written down).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise MqttUrlError(key, f"'{url}' is not a valid endpoint ({e}); {_EXPECTED}") from None
    host = parts.hostname
    if (
        not host
        or parts.scheme not in DEFAULT_PORTS
        or (require_port and port is None)
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise MqttUrlError(key, f"'{url}' is not a valid endpoint; {_EXPECTED}")
    if port == 0:
        raise MqttUrlError(key, f"'{url}': port 0 is out of range 1..65535")
    return MqttUrl(host, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts")
