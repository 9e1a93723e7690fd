"""Units a profile may declare, and how each converts to the canonical unit minerd uses."""

from __future__ import annotations

from typing import Final

# unit of a scaled raw value -> (canonical unit, factor to multiply by)
CANONICAL: Final[dict[str, tuple[str, float]]] = {
    "W": ("W", 1.0),
    "kW": ("W", 1000.0),
    "V": ("V", 1.0),
    "A": ("A", 1.0),
    "Wh": ("kWh", 0.001),
    "kWh": ("kWh", 1.0),
    "C": ("C", 1.0),
    "rpm": ("rpm", 1.0),
    "THs": ("THs", 1.0),
    "GHs": ("THs", 0.001),
    "s": ("s", 1.0),
    "": ("", 1.0),
}

KNOWN_UNITS: Final[frozenset[str]] = frozenset(CANONICAL)


def canonical_unit(unit: str) -> str:
    """The unit a value in `unit` is converted to (kW -> W, Wh -> kWh)."""
    return CANONICAL[unit][0]


def to_canonical(value: float, unit: str) -> float:
    """Convert a scaled value in `unit` to its canonical unit."""
    return value * CANONICAL[unit][1]
