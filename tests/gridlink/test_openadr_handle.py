"""The VEN's handling of events against real stores and a manual clock: opt in or out,
re-delivery, modification and cancellation, each audited like a REST quota."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api_site import START_S, SiteUnderTest

from minerd.gridlink.openadr_ven import OpenAdrVen
from minerd.model import QuotaSource
from minerd.settings.models import OpenAdrSettings

SETTINGS = OpenAdrSettings.model_validate(
    {"enabled": True, "simple_level_kw": {"1": 600, "2": 300}}
)


def event(
    level: float, mod: int = 0, status: str = "far", signal: str = "simple"
) -> dict[str, Any]:
    start = datetime.fromtimestamp(START_S + 60, UTC)
    return {
        "event_descriptor": {
            "event_id": "ev-1",
            "modification_number": mod,
            "event_status": status,
        },
        "active_period": {"dtstart": start, "duration": timedelta(minutes=10)},
        "event_signals": [
            {
                "signal_name": signal,
                "signal_type": "level",
                "intervals": [
                    {"dtstart": start, "duration": timedelta(minutes=10), "signal_payload": level}
                ],
            }
        ],
    }


def openadr_quotas(site: SiteUnderTest) -> list[tuple[float, str | None, bool]]:
    return [
        (q.limit_kw, q.reference, q.withdrawn_at_s is not None)
        for q in site.stores.quotas.all()
        if q.source is QuotaSource.OPENADR
    ]


def test_event_modification_and_cancellation(tmp_path: Path) -> None:
    site = SiteUnderTest(tmp_path / "db.sqlite")
    ven = OpenAdrVen(SETTINGS, site, 1000.0)  # type: ignore[arg-type]
    ven.vtn_id = "VTN-1"
    assert ven.handle(event(1.0)) == "optIn"
    assert ven.handle(event(1.0)) == "optIn"  # re-delivered: stored once
    assert openadr_quotas(site) == [(600.0, "openadr:ev-1:0:0", False)]
    assert ven.handle(event(2.0, mod=1)) == "optIn"
    assert openadr_quotas(site) == [
        (600.0, "openadr:ev-1:0:0", True),
        (300.0, "openadr:ev-1:1:0", False),
    ]
    assert ven.handle(event(2.0, mod=2, status="cancelled")) == "optIn"
    assert all(withdrawn for _, _, withdrawn in openadr_quotas(site))
    actions = [(e.action, e.actor) for e in site.stores.audit.query()]
    assert actions.count(("quota.create", "openadr:VTN-1")) == 2
    assert actions.count(("quota.withdraw", "openadr:VTN-1")) == 2
    creates = [
        json.loads(e.detail) for e in site.stores.audit.query() if e.action == "quota.create"
    ]
    assert {d["source"] for d in creates} == {"openadr"}
    assert site.grid_contacts >= 4  # every event counts as the grid heard from


def test_opt_out_by_setting_or_for_an_unsupported_signal(tmp_path: Path) -> None:
    site = SiteUnderTest(tmp_path / "db.sqlite")
    out = OpenAdrVen(SETTINGS.model_copy(update={"opt": "out"}), site, 1000.0)  # type: ignore[arg-type]
    assert out.handle(event(1.0)) == "optOut"
    ven = OpenAdrVen(SETTINGS, site, 1000.0)  # type: ignore[arg-type]
    assert ven.handle(event(0.3, signal="ELECTRICITY_PRICE")) == "optOut"
    assert openadr_quotas(site) == []
