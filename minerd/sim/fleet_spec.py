"""`--fleet "luxos:2000,stock:4000,whatsminer:1000:microbt-m50s"`: rig groups per firmware family.

Each item is FAMILY:COUNT[:MODEL]. Without a model, Whatsminer rigs are M50S and the
Antminer families split their count evenly over `antminer_models`.
"""

from __future__ import annotations

from collections.abc import Sequence

from minerd.model import RigProtocol
from minerd.sim.spec import RigGroupSpec

__all__ = ["parse_fleet"]

WHATSMINER_MODEL = "microbt-m50s"


def parse_fleet(
    text: str, antminer_models: Sequence[str], known_models: Sequence[str]
) -> tuple[RigGroupSpec, ...]:
    """The groups `text` asks for; ValueError naming the item that is wrong."""
    families = [p.value for p in RigProtocol]
    groups: list[RigGroupSpec] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--fleet {item!r}: expected FAMILY:COUNT or FAMILY:COUNT:MODEL")
        name, count_text = parts[0].strip().lower(), parts[1].strip()
        if name not in families:
            raise ValueError(f"--fleet {item!r}: unknown family (known: {', '.join(families)})")
        try:
            count = int(count_text)
        except ValueError:
            raise ValueError(f"--fleet {item!r}: count must be a whole number") from None
        if count < 0:
            raise ValueError(f"--fleet {item!r}: count must not be negative")
        key = item if len(parts) == 3 else name
        if key in seen:
            raise ValueError(f"--fleet {item!r}: given twice")
        seen.add(key)
        family = RigProtocol(name)
        if len(parts) == 3:
            models: Sequence[str] = (parts[2].strip(),)
        elif family in (RigProtocol.WHATSMINER, RigProtocol.MODBUS, RigProtocol.MQTT):
            models = (WHATSMINER_MODEL,)
        else:
            models = antminer_models
        for m in models:
            if m not in known_models:
                raise ValueError(
                    f"--fleet {item!r}: unknown rig model {m!r} (known: {', '.join(known_models)})"
                )
        base, extra = divmod(count, len(models))
        for i, model in enumerate(models):
            n = base + (1 if i < extra else 0)
            if n:
                groups.append(RigGroupSpec(model, n, family))
    return tuple(groups)
