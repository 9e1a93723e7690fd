"""One MQTT broker session (aiomqtt 2.x on paho-mqtt 2) that survives broker restarts.

- `run()` connects, (re)subscribes every registered pattern, dispatches each message to the
  handlers whose pattern matches, and reconnects with jittered exponential backoff.
  Run it in the owner's TaskGroup, or use `async with MqttSession(...)`.
- Handlers are plain callables `(topic, payload_bytes) -> None`, called on the loop; they
  must be quick (update a cache, put on a queue). A handler that raises is logged, not fatal.
- `publish()` and `request()` raise DeviceUnreachable while disconnected and DeviceTimeout
  when the broker or the peer does not answer in time.
- A will (retained by default) is sent by the broker when the connection dies; with
  `will_on_stop` the session also publishes it itself on a clean stop, which sends none.

The one reconnecting MQTT client of minerd (rig telemetry, quota input, the MQTT sink, the
alert channel); build it from a broker URL with `from_url`. Imports only minerd.errors.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import aiomqtt

from minerd.cancelling import raise_if_cancelled
from minerd.errors import DeviceTimeout, DeviceUnreachable
from minerd.transports.mqtt_url import MqttUrl, parse_mqtt_url

__all__ = ["ConnectHook", "MessageHandler", "MqttSession", "topic_matches"]

STOP_WILL_TIMEOUT_S = 1.0  # a clean stop waits this long, at most, to say the will itself

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
ConnectHook = Callable[[], Awaitable[None]]


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter match: `+` one level, `#` the rest (also the parent level)."""
    if pattern == topic:
        return True
    p_parts = pattern.split("/")
    t_parts = topic.split("/")
    for i, p in enumerate(p_parts):
        if p == "#":
            return not (i == 0 and t_parts[0].startswith("$"))
        if i >= len(t_parts):
            return False
        if p == "+":
            if i == 0 and t_parts[0].startswith("$"):
                return False
            continue
        if p != t_parts[i]:
            return False
    return len(p_parts) == len(t_parts)


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


class MqttSession:
    """A reconnecting broker session with pattern handlers and request/reply by "id"."""

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        name: str = "mqtt",
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        keepalive_s: int = 30,
        timeout_s: float = 5.0,
        backoff_min_s: float = 0.5,
        backoff_max_s: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        will_topic: str | None = None,
        will_payload: bytes | str | None = None,
        will_retain: bool = True,
        will_on_stop: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.endpoint = f"{host}:{port}"
        self.name = name
        self._username = username
        self._password = password
        self._client_id = client_id or f"{name}-{os.getpid()}-{random.getrandbits(32):08x}"
        self._keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._tls = tls_context
        self._will = (
            aiomqtt.Will(will_topic, will_payload, qos=1, retain=will_retain)
            if will_topic is not None
            else None
        )
        self._will_on_stop = will_on_stop
        self._subs: dict[str, int] = {}  # pattern -> qos
        self._handlers: list[tuple[str, MessageHandler]] = []
        self._routes: dict[str, tuple[MessageHandler, ...]] = {}  # topic -> handlers cache
        self._hooks: list[ConnectHook] = []
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()  # replaced and set on every connect and every failure
        self._pending: dict[str, asyncio.Future[dict[str, object]]] = {}
        self._reply_subs: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"{random.getrandbits(32):08x}"
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.last_error = ""  # why the last connection ended or failed; "" until one did
        self.connects = 0  # successful connections so far (1 + reconnects)

    @classmethod
    def from_url(
        cls, url: str | MqttUrl, *, key: str = "mqtt.url", **kwargs: object
    ) -> MqttSession:
        """A session to `mqtt://host:port` or `mqtts://host:port` (TLS with the system CAs).

        Raises MqttUrlError naming `key` for a bad URL; other arguments as for __init__.
        """
        broker = url if isinstance(url, MqttUrl) else parse_mqtt_url(url, key)
        kwargs.setdefault("tls_context", broker.tls_context())
        return cls(broker.host, broker.port, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._client is not None and self._connected.is_set()

    @property
    def failing(self) -> bool:
        """The last attempt to connect failed, or the connection dropped: backing off."""
        return self._failing

    async def wait_connected(
        self, timeout_s: float | None = None, *, fail_fast: bool = False
    ) -> None:
        """Wait until subscribed on a live connection; DeviceTimeout otherwise.

        fail_fast: raise DeviceUnreachable (with the last error) as soon as the session is
        backing off after a failed attempt, instead of waiting for the next one.
        """
        try:
            async with asyncio.timeout(self.timeout_s if timeout_s is None else timeout_s):
                while not self.connected:
                    if fail_fast and self._failing:
                        raise DeviceUnreachable(self.name, self.endpoint, self.last_error)
                    await self._changed.wait()
        except TimeoutError:
            raise DeviceTimeout(self.name, self.endpoint, "broker not connected") from None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------ registration

    async def subscribe(self, pattern: str, handler: MessageHandler, qos: int = 0) -> None:
        """Register handler for pattern; subscribed now if connected, and after reconnects."""
        self._handlers.append((pattern, handler))
        self._routes.clear()
        new = pattern not in self._subs or qos > self._subs[pattern]
        self._subs[pattern] = max(qos, self._subs.get(pattern, 0))
        client = self._client
        if new and client is not None:
            try:
                await client.subscribe(pattern, qos, timeout=self.timeout_s)
            except aiomqtt.MqttError as exc:
                # The run loop resubscribes everything after the reconnect this implies.
                log.debug("%s: subscribe %s deferred: %s", self.name, pattern, exc)

    def unsubscribe_handler(self, handler: MessageHandler) -> None:
        """Stop calling handler (the broker subscription stays; it is cheap)."""
        self._handlers = [(p, h) for p, h in self._handlers if h is not handler]
        self._routes.clear()

    def on_connect(self, hook: ConnectHook) -> None:
        """Call hook after every (re)connection, once subscriptions are in place."""
        self._hooks.append(hook)

    # ------------------------------------------------------------ publishing

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 0,
        retain: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        client = self._client
        if client is None or not self._connected.is_set():
            raise DeviceUnreachable(self.name, self.endpoint, f"publish {topic}: not connected")
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                await client.publish(topic, payload, qos=qos, retain=retain)
        except TimeoutError:
            raise DeviceTimeout(
                self.name, self.endpoint, f"publish {topic}: no ack within {limit:g}s"
            ) from None
        except aiomqtt.MqttError as exc:
            raise DeviceUnreachable(self.name, self.endpoint, f"publish {topic}: {exc}") from None

    async def request(
        self,
        topic: str,
        payload: Mapping[str, object],
        reply_topic: str,
        timeout_s: float,
        *,
        device: str | None = None,
        reply_pattern: str | None = None,
        qos: int = 1,
    ) -> dict[str, object]:
        """Publish payload (JSON, "id" added if missing) and wait for the reply with that id.

        Replies arrive on reply_topic; pass reply_pattern (e.g. "rigs/+/reply") to share one
        subscription among many peers. Raises DeviceTimeout naming `device` (default topic).
        """
        who = device or topic
        pattern = reply_pattern or reply_topic
        sub = self._reply_subs.get(pattern)
        if sub is None:
            # Concurrent first requests share one subscribe, and all wait for it.
            sub = self._reply_subs[pattern] = asyncio.ensure_future(
                self.subscribe(pattern, self._on_reply, qos=qos)
            )
        await asyncio.shield(sub)
        body = dict(payload)
        req_id = str(body.get("id") or f"{self._id_prefix}-{next(self._ids)}")
        body["id"] = req_id
        fut: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        try:
            async with asyncio.timeout(timeout_s):
                await self.publish(topic, json.dumps(body), qos=qos)
                return await fut
        except TimeoutError:
            raise DeviceTimeout(
                who, self.endpoint, f"no reply on {reply_topic} within {timeout_s:g}s"
            ) from None
        except DeviceUnreachable as exc:
            raise DeviceUnreachable(who, self.endpoint, exc.message) from None
        finally:
            self._pending.pop(req_id, None)

    def _on_reply(self, topic: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            log.debug("%s: non-JSON reply on %s", self.name, topic)
            return
        if not isinstance(body, dict):
            return
        fut = self._pending.get(str(body.get("id")))
        if fut is not None and not fut.done():
            fut.set_result(body)

    # ------------------------------------------------------------ the loop

    def _dispatch(self, topic: str, payload: bytes) -> None:
        handlers = self._routes.get(topic)
        if handlers is None:
            handlers = tuple(h for p, h in self._handlers if topic_matches(p, topic))
            if len(self._routes) < 100_000:
                self._routes[topic] = handlers
        for handler in handlers:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("%s: handler for %s failed", self.name, topic)

    def _new_client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self._client_id,
            keepalive=self._keepalive_s,
            timeout=self.timeout_s,
            tls_context=self._tls,
            will=self._will,
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        async with client:
            self._client = client
            for pattern, qos in list(self._subs.items()):
                await client.subscribe(pattern, qos, timeout=self.timeout_s)
            # aiomqtt's wait_for can lose a cancel (minerd/cancelling.py): a stop told while
            # subscribing would otherwise leave this session dispatching until the broker goes.
            raise_if_cancelled()
            self._connected.set()
            self.connects += 1
            if self._failing:
                log.warning("%s: reconnected to %s", self.name, self.endpoint)
            else:
                log.info("%s: connected to %s", self.name, self.endpoint)
            self._failing = False
            self._notify()
            try:
                for hook in self._hooks:
                    try:
                        await hook()
                    except Exception:
                        log.exception("%s: on-connect hook failed", self.name)
                raise_if_cancelled()  # a hook's publish can lose a cancel as well
                async for message in client.messages:
                    self._dispatch(message.topic.value, _as_bytes(message.payload))
            except asyncio.CancelledError:
                await self._say_will(client)
                raise

    async def _say_will(self, client: aiomqtt.Client) -> None:
        """A clean stop sends no last will: publish it ourselves (best effort)."""
        will = self._will
        if will is None or not self._will_on_stop:
            return
        try:
            async with asyncio.timeout(STOP_WILL_TIMEOUT_S):
                await client.publish(will.topic, will.payload, qos=will.qos, retain=will.retain)
        except (aiomqtt.MqttError, TimeoutError):
            pass  # the broker is gone or slow: the will it holds says the same

    async def run(self) -> None:
        """Connect and dispatch forever, reconnecting with backoff; returns only if cancelled."""
        backoff_s = self._backoff_min_s
        while True:
            try:
                await self._session(self._new_client())
                backoff_s = self._backoff_min_s
                why = "connection closed"
            except aiomqtt.MqttError as exc:
                why = str(exc) or type(exc).__name__
            except (OSError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
            finally:
                self._client = None
                self._connected.clear()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled while the client was closing: aiomqtt may report that as an
                # MqttError. A reconnect loop must never swallow its own cancellation.
                raise asyncio.CancelledError
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "%s: %s: %s; retry in %.1fs", self.name, self.endpoint, why, backoff_s)
            self._failing = True
            self.last_error = why
            self._notify()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(DeviceUnreachable(self.name, self.endpoint, why))
            await asyncio.sleep(backoff_s * random.uniform(0.8, 1.2))
            backoff_s = min(backoff_s * 2, self._backoff_max_s)

    async def __aenter__(self) -> MqttSession:
        self._task = asyncio.create_task(self.run(), name=f"mqtt-{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves: do not swallow it
