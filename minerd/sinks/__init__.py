"""Telemetry sinks: InfluxDB/VictoriaMetrics (with SQLite spool), Prometheus, MQTT."""

from minerd.sinks.base import Sink, SinkStats
from minerd.sinks.build import InfluxOptions, InfluxSection, build_influx_sink
from minerd.sinks.events import (
    AlertEvent,
    CommandsEvent,
    ComplianceEvent,
    EconomicsFigures,
    SnapshotEvent,
    TelemetryEvent,
)
from minerd.sinks.hub import SPOOL_ALERT_RATIO, SinkHub
from minerd.sinks.influx import InfluxSink, InfluxSinkConfig
from minerd.sinks.mqtt import MqttSink, MqttSinkConfig
from minerd.sinks.points import PointEncoder
from minerd.sinks.prometheus import CONTENT_TYPE, PrometheusSink
from minerd.sinks.writers import BatchRejected, LineWriter, V1Target, V1Writer, V2Target, V2Writer

__all__ = [
    "CONTENT_TYPE",
    "SPOOL_ALERT_RATIO",
    "AlertEvent",
    "BatchRejected",
    "CommandsEvent",
    "ComplianceEvent",
    "EconomicsFigures",
    "InfluxOptions",
    "InfluxSection",
    "InfluxSink",
    "InfluxSinkConfig",
    "LineWriter",
    "MqttSink",
    "MqttSinkConfig",
    "PointEncoder",
    "PrometheusSink",
    "Sink",
    "SinkHub",
    "SinkStats",
    "SnapshotEvent",
    "TelemetryEvent",
    "V1Target",
    "V1Writer",
    "V2Target",
    "V2Writer",
    "build_influx_sink",
]
