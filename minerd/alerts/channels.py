"""Notification channels: Alertmanager API v2, a signed JSON webhook, MQTT.

Each send() delivers one outbox item or raises SinkError (retried later, in order).
PermanentFailure means retrying cannot help (the receiver refuses the payload itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import aiohttp

from minerd.alerts.changes import AlertChange, ChangeKind
from minerd.errors import DeviceError, SinkError
from minerd.model import Alert
from minerd.storage import OutboxItem
from minerd.transports.mqtt import MqttSession
from minerd.transports.mqtt_url import MqttUrlError

SIGNATURE_HEADER = "X-Minerd-Signature"
RECONNECT_MAX_S = 10.0  # the MQTT channel's backoff cap: alerts should not wait long


class PermanentFailure(SinkError):
    """The receiver rejected this item for good (HTTP 4xx): logged and skipped."""


class NowFn(Protocol):
    def __call__(self) -> float: ...


class Channel(Protocol):
    name: str

    async def send(self, item: OutboxItem, change: AlertChange) -> None: ...

    async def close(self) -> None: ...


def sign(secret: bytes, body: bytes) -> str:
    """The X-Minerd-Signature value: sha256=<hex HMAC-SHA256 of the exact body>."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _iso(t_s: float) -> str:
    return (
        datetime.fromtimestamp(t_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def alertmanager_alert(a: Alert, ends_at_s: float) -> dict[str, object]:
    """One postableAlert of Alertmanager's API v2. Empty label values are left out."""
    labels = {"alertname": a.rule, "severity": a.severity.value}
    labels.update((k, v) for k, v in a.labels if v)
    annotations = {"summary": a.summary, "description": a.description, "alert_id": a.alert_id}
    if a.acknowledged_by:
        annotations["acknowledged_by"] = a.acknowledged_by
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(a.starts_at_s),
        "endsAt": _iso(ends_at_s),
    }


async def _post(
    session: aiohttp.ClientSession,
    name: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> None:
    try:
        async with asyncio.timeout(timeout_s), session.post(url, data=body, headers=headers) as r:
            text = (await r.text())[:200]
            if 200 <= r.status < 300:
                return
            if 400 <= r.status < 500 and r.status not in (408, 429):
                raise PermanentFailure(name, f"POST {url}: HTTP {r.status}: {text}")
            raise SinkError(name, f"POST {url}: HTTP {r.status}: {text}")
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SinkError(name, f"POST {url}: {type(exc).__name__}: {exc}") from exc


class AlertmanagerChannel:
    """POST /api/v2/alerts. Firing alerts carry endsAt = now + resolve_after_s and are
    resent while firing (resend()); a resolved alert is sent once with its real endsAt."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        now_s: NowFn,
        resolve_after_s: float,
        timeout_s: float,
    ) -> None:
        self.name = name
        self.url = base_url.rstrip("/") + "/api/v2/alerts"
        self._session = session
        self._now_s = now_s
        self._resolve_after_s = resolve_after_s
        self._timeout_s = timeout_s

    async def send(self, item: OutboxItem, change: AlertChange) -> None:
        a = change.alert
        if a.ends_at_s is not None:
            await self.post([alertmanager_alert(a, a.ends_at_s)])
        elif change.kind is not ChangeKind.RESOLVED:
            await self.post([alertmanager_alert(a, self._now_s() + self._resolve_after_s)])

    async def resend(self, active: Sequence[Alert]) -> None:
        if active:
            ends = self._now_s() + self._resolve_after_s
            await self.post([alertmanager_alert(a, ends) for a in active])

    async def post(self, alerts: list[dict[str, object]]) -> None:
        body = json.dumps(alerts).encode()
        headers = {"Content-Type": "application/json"}
        await _post(self._session, self.name, self.url, body, headers, self._timeout_s)

    async def close(self) -> None:
        return None


class WebhookChannel:
    """POST the change as JSON, signed with HMAC-SHA256 of the exact body."""

    def __init__(
        self, name: str, url: str, secret: bytes, session: aiohttp.ClientSession, timeout_s: float
    ) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self._session = session
        self._timeout_s = timeout_s

    async def send(self, item: OutboxItem, change: AlertChange) -> None:
        body = item.payload_json.encode()
        headers = {
            "Content-Type": "application/json",
            "X-Minerd-Delivery": str(item.outbox_id),
            "X-Minerd-Event": change.kind.value,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        await _post(self._session, self.name, self.url, body, headers, self._timeout_s)

    async def close(self) -> None:
        return None


class MqttChannel:
    """Publish each change to <prefix>/<site>/alerts at QoS 1 on one kept-open session.

    The session (started by the first send) reconnects in the background; a send while
    it is backing off fails at once with the last error, and the outbox retries it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        topic: str,
        client_id: str,
        timeout_s: float,
        username: str = "",
        password: str | None = None,
    ) -> None:
        try:
            self._session = MqttSession.from_url(
                url,
                key="mqtt.url",
                name=f"alerts {name}",
                client_id=client_id,
                username=username or None,
                password=password,
                timeout_s=timeout_s,
                backoff_max_s=RECONNECT_MAX_S,
            )
        except MqttUrlError as exc:
            raise SinkError(name, str(exc)) from None
        self.name = name
        self.topic = topic
        self._timeout_s = timeout_s
        self._running = False

    async def send(self, item: OutboxItem, change: AlertChange) -> None:
        session = self._session
        if not self._running:
            await session.__aenter__()
            self._running = True
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await session.wait_connected(self._timeout_s * 2, fail_fast=True)
                await session.publish(self.topic, item.payload_json.encode(), qos=1)
        except (DeviceError, TimeoutError) as exc:
            where = session.endpoint
            raise SinkError(self.name, f"publish to {where} {self.topic}: {exc}") from exc

    async def close(self) -> None:
        if self._running:
            self._running = False
            await self._session.__aexit__(None, None, None)
