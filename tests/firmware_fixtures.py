"""Replies recorded-in-layout from real firmware (tests/fixtures/firmware, see its README).

Loaded with the same lenient decoder the cgminer transport uses, so a fixture may carry
the firmware's broken JSON (the S9's missing comma between STATS[0] and STATS[1]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minerd.transports.jsonrepair import loads_lenient

FIRMWARE_DIR = Path(__file__).parent / "fixtures" / "firmware"


def families() -> list[str]:
    # cgminer (4028) fixtures only; control-API directories (stock-cgi, ...) have no summary.json
    return sorted(p.name for p in FIRMWARE_DIR.iterdir() if (p / "summary.json").is_file())


def has(family: str, command: str) -> bool:
    return (FIRMWARE_DIR / family / f"{command}.json").is_file()


def load(family: str, command: str) -> Any:
    """The reply as the transport would decode it; KeyError names a missing fixture."""
    path = FIRMWARE_DIR / family / f"{command}.json"
    if not path.is_file():
        raise KeyError(f"no fixture {family}/{command}.json")
    return loads_lenient(path.read_bytes())
