"""The dashboard variables the operator guide names are the ones the dashboards have."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operator-guide.md"


def variables(name: str) -> list[str]:
    board = json.loads((ROOT / "dashboards" / name).read_text())
    return [v["name"] for v in board["templating"]["list"]]


def test_guide_names_each_dashboards_variables() -> None:
    text = " ".join(GUIDE.read_text().split())
    assert "the fleet dashboard adds **container**" in text
    assert "the rig detail dashboard adds **container** and **rig**" in text
    assert variables("minerd-fleet.json") == ["DS", "site", "container"]
    assert variables("minerd-rig-detail.json") == ["DS", "site", "container", "rig"]
    for name in ("minerd-site-overview.json", "minerd-quota-compliance.json"):
        assert variables(name)[:2] == ["DS", "site"]
