"""Energy awards over MQTT, beside the quota input: `<prefix>/<site>/awards/set` takes the
body of POST /api/v1/awards (a list, or {"awards": [...], "replace": ..., "reference": ...}
with an optional "idempotency_key"); the answer goes to `<prefix>/<site>/awards/ack`.
Same parser, command and storage as the HTTP route."""

from __future__ import annotations

import json
import logging

from minerd.api.problems import QuotaConflict
from minerd.api.times import iso
from minerd.errors import QuotaError, StorageError
from minerd.model import QuotaSource
from minerd.runtime.award_input import AwardInputError, Rules, parse_json
from minerd.runtime.commands import PutAwards, execute
from minerd.runtime.service import SiteService

log = logging.getLogger(__name__)

MAX_AWARD_PAYLOAD_BYTES = 1_048_576  # as the HTTP body limit

AckBody = dict[str, object]


def _error(status: int, message: str, field: str | None, **extra: object) -> AckBody:
    return {"ok": False, "status": status, "error": message, "field": field, **extra}


async def answer_award_message(
    service: SiteService, payload: bytes, actor: str, rules: Rules
) -> AckBody:
    """One message in, one acknowledgement out (never raises for bad input); the database
    work in a worker thread."""
    if len(payload) > MAX_AWARD_PAYLOAD_BYTES:
        return _error(413, f"payload larger than {MAX_AWARD_PAYLOAD_BYTES} bytes", None)
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"payload is not JSON: {exc}", None)
    service.note_grid_contact()  # heard from the grid, whatever the message's fate
    key: object = None
    if isinstance(data, dict):
        key = data.pop("idempotency_key", None)
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
            return _error(
                422, "idempotency_key: must be a string of 1..200 characters", "idempotency_key"
            )
    try:
        batch = parse_json(data, rules)
        out = await execute(
            service,
            PutAwards(batch, actor, QuotaSource.MQTT, key if isinstance(key, str) else None),
        )
    except AwardInputError as exc:
        problems = [{"field": f"{p.where}.{p.field}", "error": p.message} for p in exc.problems]
        return _error(422, f"{exc.field}: {exc.message}", exc.field, problems=problems)
    except QuotaConflict as exc:
        return _error(409, f"{exc.field}: {exc.message}", exc.field)
    except QuotaError as exc:
        return _error(422, f"{exc.field}: {exc.message}", exc.field)
    except StorageError as exc:
        log.error("mqtt award input: %s", exc)
        return _error(503, f"storage unavailable: {exc}", None)
    new = sum(out.created)
    return {
        "ok": True,
        "status": 201 if new or out.withdrawn else 200,
        "created": bool(new or out.withdrawn),
        "new": new,
        "repeated": len(out.created) - new,
        "ids": [a.award_id for a in out.awards],
        "from": iso(min(a.start_s for a in out.awards)) if out.awards else None,
        "to": iso(max(a.end_s for a in out.awards)) if out.awards else None,
        "superseded": [a.award_id for a in out.superseded],
        "withdrawn": [a.award_id for a in out.withdrawn],
    }
