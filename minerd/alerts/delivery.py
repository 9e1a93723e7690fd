"""The delivery task: drains each channel's durable outbox in order, with backoff.

One loop per channel, so a channel that is down delays only itself. The head item of a
channel is retried (exponential backoff, capped, jittered) and nothing behind it overtakes
it: receivers see changes in the order they happened. Nothing is dropped while a channel
is down; only an item the receiver refuses for good (HTTP 4xx) is logged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Protocol

import aiohttp

from minerd.alerts.changes import change_from_json
from minerd.alerts.channels import (
    AlertmanagerChannel,
    Channel,
    MqttChannel,
    PermanentFailure,
    WebhookChannel,
)
from minerd.alerts.config import DeliverySettings
from minerd.errors import SinkError
from minerd.model import Alert
from minerd.storage import AlertStore, OutboxItem

log = logging.getLogger(__name__)

_BATCH = 100


def channel_names(s: DeliverySettings) -> tuple[str, ...]:
    """Stable outbox channel names: they key queued items across restarts."""
    names = [f"alertmanager:{u.rstrip('/')}" for u in s.alertmanager_urls]
    if s.webhook_url:
        names.append("webhook")
    if s.mqtt_url:
        names.append("mqtt")
    return tuple(names)


def backoff_s(attempts: int, s: DeliverySettings) -> float:
    """Delay before the next attempt after `attempts` failures (jittered +-20 %)."""
    base: float = min(s.retry_max_s, s.retry_base_s * float(2 ** min(attempts, 30)))
    jitter: float = random.uniform(0.8, 1.2)
    return base * jitter


class AlertSource(Protocol):
    """What delivery reads of the engine (AlertEngine is one): the engine imports delivery,
    so delivery names only this, not the engine (no import circle)."""

    @property
    def site(self) -> str: ...
    @property
    def store(self) -> AlertStore: ...
    @property
    def delivery(self) -> DeliverySettings: ...
    @property
    def wakeup(self) -> asyncio.Event: ...
    def now_s(self) -> float: ...
    def active(self) -> list[Alert]: ...


class Deliverer:
    def __init__(self, engine: AlertSource) -> None:
        self._engine = engine
        self._s = engine.delivery
        self._events: dict[str, asyncio.Event] = {}
        self._warned: set[str] = set()

    def _build(self, session: aiohttp.ClientSession) -> list[Channel]:
        s, e = self._s, self._engine
        out: list[Channel] = []
        for url in s.alertmanager_urls:
            name = f"alertmanager:{url.rstrip('/')}"
            out.append(
                AlertmanagerChannel(
                    name, url, session, e.now_s, s.resolve_after_s, s.request_timeout_s
                )
            )
        if s.webhook_url:
            out.append(
                WebhookChannel(
                    "webhook", s.webhook_url, s.webhook_secret, session, s.request_timeout_s
                )
            )
        if s.mqtt_url:
            topic = f"{s.mqtt_topic_prefix}/{e.site}/alerts"
            out.append(
                MqttChannel(
                    "mqtt",
                    s.mqtt_url,
                    topic,
                    f"minerd-{e.site}-alerts",
                    s.request_timeout_s,
                    s.mqtt_username,
                    s.mqtt_password,
                )
            )
        return out

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            channels = self._build(session)
            self._events = {ch.name: asyncio.Event() for ch in channels}
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._fan_out_wakeups(), name="alerts-wakeup")
                    for ch in channels:
                        tg.create_task(self._drain(ch), name=f"alerts-{ch.name}")
            finally:
                for ch in channels:
                    await ch.close()

    async def _fan_out_wakeups(self) -> None:
        wake = self._engine.wakeup
        while True:
            await wake.wait()
            wake.clear()
            for ev in self._events.values():
                ev.set()

    async def _drain(self, ch: Channel) -> None:
        store, s, ev = self._engine.store, self._s, self._events[ch.name]
        last_resend = float("-inf")  # resend at start: Alertmanager may have expired them
        while True:
            now = self._engine.now_s()
            # Oldest unsent first whatever its retry time: order matters more than speed.
            items = store.due(ch.name, float("inf"), _BATCH)
            wait_s = s.poll_interval_s
            for item in items:
                if item.next_attempt_s > now:
                    wait_s = min(s.poll_interval_s, item.next_attempt_s - now)
                    break
                if not await self._deliver(ch, item):
                    break
            else:
                if len(items) == _BATCH:
                    continue  # more queued: go on without waiting
                if isinstance(ch, AlertmanagerChannel) and (
                    now - last_resend >= s.resend_interval_s
                ):
                    last_resend = now
                    await self._resend(ch)
            try:
                async with asyncio.timeout(max(0.01, wait_s)):
                    await ev.wait()
            except TimeoutError:
                pass
            ev.clear()

    async def _deliver(self, ch: Channel, item: OutboxItem) -> bool:
        store = self._engine.store
        try:
            change = change_from_json(item.payload_json)
            await ch.send(item, change)
        except PermanentFailure as exc:
            log.error("alert %s to %s refused, skipped: %s", item.alert_id, ch.name, exc)
            store.mark_sent(item.outbox_id, self._engine.now_s())
            return True
        except (ValueError, KeyError) as exc:
            log.error("outbox item %d of %s unreadable, skipped: %s", item.outbox_id, ch.name, exc)
            store.mark_sent(item.outbox_id, self._engine.now_s())
            return True
        except SinkError as exc:
            retry_at = self._engine.now_s() + backoff_s(item.attempts, self._s)
            store.mark_failed(item.outbox_id, retry_at, str(exc))
            if ch.name in self._warned:
                log.debug("alert channel %s still failing: %s", ch.name, exc)
            else:
                self._warned.add(ch.name)
                log.warning("alert channel %s failing, will retry: %s", ch.name, exc)
            return False
        store.mark_sent(item.outbox_id, self._engine.now_s())
        if ch.name in self._warned:
            self._warned.discard(ch.name)
            log.warning("alert channel %s delivers again", ch.name)
        return True

    async def _resend(self, ch: AlertmanagerChannel) -> None:
        try:
            await ch.resend(self._engine.active())
        except SinkError as exc:
            log.debug("resend to %s failed: %s", ch.name, exc)
