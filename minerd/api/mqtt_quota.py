"""Quota input over MQTT (off by default): `<prefix>/<site>/quota/set` takes the body of
POST /api/v1/quotas as JSON (plus an optional "idempotency_key"); the answer goes to
`<prefix>/<site>/quota/ack`. Same validation and storage as the HTTP route. With award rules
given, energy awards come in alongside on `<prefix>/<site>/awards/set` (api.mqtt_awards)."""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import ValidationError

from minerd.api.mqtt_awards import answer_award_message
from minerd.api.problems import QuotaConflict
from minerd.api.quota_orders import (
    QuotaOutcome,
    contract_notes,
    submit_quota,
    submit_quota_async,
)
from minerd.api.schemas import QuotaRequest
from minerd.api.times import iso
from minerd.errors import DeviceError, MinerdError, QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.runtime.award_input import Rules
from minerd.runtime.service import SiteService
from minerd.transports.mqtt import MqttSession

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 16_384
OP_TIMEOUT_S = 10.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0

AckBody = dict[str, object]


def _error(status: int, message: str, field: str | None, reference: object) -> AckBody:
    return {"ok": False, "status": status, "error": message, "field": field, "reference": reference}


def _parse(service: SiteService, payload: bytes) -> tuple[QuotaRequest, str | None] | AckBody:
    """The request and its idempotency key, or the refusal to send back."""
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
        return QuotaRequest.model_validate(data), key
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        return _error(422, f"{field}: {message}", field, reference)


def _refusal(exc: MinerdError, reference: object) -> AckBody:
    if isinstance(exc, QuotaConflict):
        return _error(409, f"{exc.field}: {exc.message}", exc.field, reference)
    if isinstance(exc, QuotaError):
        return _error(422, f"{exc.field}: {exc.message}", exc.field, reference)
    log.error("mqtt quota input: %s", exc)
    return _error(503, f"storage unavailable: {exc}", None, reference)


def _accepted(service: SiteService, out: QuotaOutcome) -> AckBody:
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
        "notes": contract_notes(service, [("limit_kw", q.limit_kw)]),  # as the HTTP answer
    }


def handle_quota_message(service: SiteService, payload: bytes, actor: str) -> AckBody:
    """One message in, one acknowledgement out (never raises for bad input); the database
    work on this thread (answer_quota_message keeps it off the event loop)."""
    parsed = _parse(service, payload)
    if isinstance(parsed, dict):
        return parsed
    req, key = parsed
    try:
        out = submit_quota(service, req, actor=actor, source=QuotaSource.MQTT, idempotency_key=key)
    except (QuotaError, StorageError) as exc:
        return _refusal(exc, req.reference)
    return _accepted(service, out)


async def answer_quota_message(service: SiteService, payload: bytes, actor: str) -> AckBody:
    """handle_quota_message with the database work in a worker thread."""
    parsed = _parse(service, payload)
    if isinstance(parsed, dict):
        return parsed
    req, key = parsed
    try:
        out = await submit_quota_async(
            service, req, actor=actor, source=QuotaSource.MQTT, idempotency_key=key
        )
    except (QuotaError, StorageError) as exc:
        return _refusal(exc, req.reference)
    return _accepted(service, out)


async def run_mqtt_quota_input(
    service: SiteService,
    url: str,
    prefix: str,
    actor: str = "mqtt",
    *,
    username: str | None = None,
    password: str | None = None,
    award_rules: Rules | None = None,
) -> None:
    """Serve quota requests from the broker until cancelled, reconnecting with backoff.

    Messages are handled one at a time, in arrival order, each acknowledged before the next.
    A bad url raises MqttUrlError naming mqtt.url.
    """
    base = f"{prefix}/{service.site_name}/quota"
    topic_set, topic_ack = f"{base}/set", f"{base}/ack"
    awards_base = f"{prefix}/{service.site_name}/awards"
    awards_set, awards_ack = f"{awards_base}/set", f"{awards_base}/ack"
    session = MqttSession.from_url(
        url,
        key="mqtt.url",
        name="mqtt quota input",
        username=username or None,
        password=password,
        timeout_s=OP_TIMEOUT_S,
        backoff_min_s=BACKOFF_MIN_S,
        backoff_max_s=BACKOFF_MAX_S,
    )
    inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()  # as the client's own: unbounded

    def on_message(topic: str, payload: bytes) -> None:
        inbox.put_nowait((topic, payload))

    async def listening() -> None:
        log.info("mqtt quota input: listening on %s at %s", topic_set, url)

    session.on_connect(listening)
    await session.subscribe(topic_set, on_message, qos=1)
    if award_rules is not None:
        await session.subscribe(awards_set, on_message, qos=1)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(session.run(), name="mqtt-quota-session")
        while True:
            topic, payload = await inbox.get()
            if topic == awards_set and award_rules is not None:
                ack = await answer_award_message(service, payload, actor, award_rules)
                reply_to = awards_ack
            else:
                ack = await answer_quota_message(service, payload, actor)
                reply_to = topic_ack
            if ack["ok"]:
                log.info("mqtt quota input: %s", ack)
            else:
                log.warning("mqtt quota input refused: %s", ack["error"])
            try:
                await session.publish(reply_to, json.dumps(ack), qos=1)
            except DeviceError as exc:
                log.warning("mqtt quota input: ack not sent: %s", exc)
