"""The one broker-URL parser: defaults, TLS, and errors that name the config key."""

from __future__ import annotations

import pytest

from minerd.alerts.channels import MqttChannel
from minerd.errors import ConfigError, SinkError
from minerd.settings.models import MqttSettings
from minerd.sinks import MqttSinkConfig
from minerd.transports.mqtt import MqttSession
from minerd.transports.mqtt_url import MqttUrl, MqttUrlError, parse_mqtt_url


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("mqtt://127.0.0.1:1884", MqttUrl("127.0.0.1", 1884, tls=False)),
        ("mqtt://broker.local", MqttUrl("broker.local", 1883, tls=False)),
        ("mqtts://broker.local", MqttUrl("broker.local", 8883, tls=True)),
        ("mqtts://[::1]:9883/", MqttUrl("::1", 9883, tls=True)),
    ],
)
def test_parse_accepts(url: str, want: MqttUrl) -> None:
    got = parse_mqtt_url(url)
    assert got == want
    assert (got.tls_context() is not None) is want.tls


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://h:1883", "'http://h:1883' is not a valid endpoint; expected mqtt://host:port"),
        ("tcp://h:1883", "is not a valid endpoint; expected mqtt://host:port or mqtts://"),
        ("mqtt://:1883", "is not a valid endpoint"),
        ("mqtt://h:99999", "'mqtt://h:99999' is not a valid endpoint (Port out of range"),
        ("mqtt://h:0", "'mqtt://h:0': port 0 is out of range 1..65535"),
        ("mqtt://h:1883/topic", "is not a valid endpoint"),
        ("mqtt://h:1883?x=1", "is not a valid endpoint"),
    ],
)
def test_errors_name_the_key(url: str, detail: str) -> None:
    with pytest.raises(MqttUrlError) as info:
        parse_mqtt_url(url, "alerts.mqtt_url")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.key == "alerts.mqtt_url"
    assert detail in err.detail
    assert err.problems == [f"alerts.mqtt_url: {err.detail}"]


def test_the_config_file_must_write_the_port() -> None:
    assert parse_mqtt_url("mqtt://h").port == 1883
    with pytest.raises(MqttUrlError, match=r"^mqtt\.url: 'mqtt://h' is not a valid endpoint"):
        parse_mqtt_url("mqtt://h", require_port=True)


def test_settings_report_the_key_path_once() -> None:
    with pytest.raises(ValueError, match="url") as info:
        MqttSettings(url="mqtt://h")
    text = str(info.value)
    assert "'mqtt://h' is not a valid endpoint; expected mqtt://host:port" in text
    assert "mqtt.url: mqtt.url" not in text
    ok = MqttSettings(url="mqtts://h:8884")
    assert (ok.host, ok.port, ok.tls) == ("h", 8884, True)


def test_every_user_names_the_key() -> None:
    with pytest.raises(MqttUrlError, match=r"^mqtt\.url: 'ftp://h' is not"):
        MqttSinkConfig.from_url("ftp://h")
    with pytest.raises(MqttUrlError, match=r"^rigs\.mqtt: 'ftp://h' is not"):
        MqttSession.from_url("ftp://h", key="rigs.mqtt")
    with pytest.raises(SinkError, match=r"mqtt\.url: 'ftp://h' is not") as info:
        MqttChannel("mqtt", "ftp://h", "a/alerts", "cid", 1.0)
    assert info.value.sink == "mqtt"


def test_session_from_url_takes_host_port_and_tls() -> None:
    s = MqttSession.from_url("mqtts://broker.local", name="x")
    assert (s.host, s.port, s.endpoint) == ("broker.local", 8883, "broker.local:8883")
    assert s._tls is not None  # TLS is only visible on the wire otherwise
    plain = MqttSession.from_url("mqtt://127.0.0.1:1884", name="y")
    assert plain._tls is None
