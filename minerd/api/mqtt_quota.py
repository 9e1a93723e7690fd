"""Quota input over MQTT (off by default): `<prefix>/<site>/quota/set` takes the body of
POST /api/v1/quotas as JSON (plus an optional "idempotency_key"); the answer goes to
`<prefix>/<site>/quota/ack`. Same validation and storage as the HTTP route."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from urllib.parse import urlsplit

import aiomqtt
from pydantic import ValidationError

from minerd.api.problems import QuotaConflict
from minerd.api.quota_orders import submit_quota
from minerd.api.schemas import QuotaRequest
from minerd.api.times import iso
from minerd.errors import ConfigError, QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.runtime.service import SiteService

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 16_384
OP_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 30.0

AckBody = dict[str, object]


def _error(status: int, message: str, field: str | None, reference: object) -> AckBody:
    return {"ok": False, "status": status, "error": message, "field": field, "reference": reference}


def handle_quota_message(service: SiteService, payload: bytes, actor: str) -> AckBody:
    """One message in, one acknowledgement out (never raises for bad input)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _error(413, f"payload larger than {MAX_PAYLOAD_BYTES} bytes", None, None)
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"payload is not JSON: {exc}", None, None)
    if not isinstance(data, dict):
        return _error(422, "payload must be a JSON object", None, None)
    service.note_grid_contact()  # heard from the grid, whatever the message's fate
    reference = data.get("reference")
    key = data.pop("idempotency_key", None)
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
        return _error(
            422,
            "idempotency_key: must be a string of 1..200 characters",
            "idempotency_key",
            reference,
        )
    try:
        req = QuotaRequest.model_validate(data)
        out = submit_quota(service, req, actor=actor, source=QuotaSource.MQTT, idempotency_key=key)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        return _error(422, f"{field}: {message}", field, reference)
    except QuotaConflict as exc:
        return _error(409, f"{exc.field}: {exc.message}", exc.field, reference)
    except QuotaError as exc:
        return _error(422, f"{exc.field}: {exc.message}", exc.field, reference)
    except StorageError as exc:
        log.error("mqtt quota input: %s", exc)
        return _error(503, f"storage unavailable: {exc}", None, reference)
    q = out.quota
    return {
        "ok": True,
        "status": 201 if out.created else 200,
        "id": q.quota_id,
        "created": out.created,
        "limit_kw": q.limit_kw,
        "start": iso(q.start_s),
        "end": None if q.end_s is None else iso(q.end_s),
        "effective_at": iso(out.effective_at_s),
        "reference": q.reference,
    }


def _broker(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError([f"mqtt url {url!r}: expected mqtt://host:port or mqtts://host:port"])
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


async def run_mqtt_quota_input(
    service: SiteService,
    url: str,
    prefix: str,
    actor: str = "mqtt",
    *,
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Serve quota requests from the broker until cancelled, reconnecting with backoff."""
    host, port, tls = _broker(url)
    base = f"{prefix}/{service.site_name}/quota"
    topic_set, topic_ack = f"{base}/set", f"{base}/ack"
    backoff_s = 1.0
    warned = False
    while True:
        try:
            async with aiomqtt.Client(
                host,
                port,
                username=username or None,
                password=password,
                timeout=OP_TIMEOUT_S,
                tls_context=ssl.create_default_context() if tls else None,
            ) as client:
                await client.subscribe(topic_set, qos=1)
                log.info("mqtt quota input: listening on %s at %s", topic_set, url)
                backoff_s, warned = 1.0, False
                async for message in client.messages:
                    payload = message.payload
                    raw = (
                        payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
                    )
                    ack = handle_quota_message(service, bytes(raw), actor)
                    if ack["ok"]:
                        log.info("mqtt quota input: %s", ack)
                    else:
                        log.warning("mqtt quota input refused: %s", ack["error"])
                    await client.publish(topic_ack, json.dumps(ack), qos=1)
        except aiomqtt.MqttError as exc:
            level = logging.DEBUG if warned else logging.WARNING
            log.log(
                level, "mqtt quota input: broker %s: %s; retrying in %.0f s", url, exc, backoff_s
            )
            warned = True
            await asyncio.sleep(backoff_s * random.uniform(0.8, 1.2))
            backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)
