"""The speed targets of the benchmarks, checked in one way.

Each check prints the figure, its target and `ok` or `MISSED`; `finish()` gives the exit code,
so a benchmark that missed a target exits non-zero and `make bench` fails. The targets that
unit tests used to assert with wall-clock times live here: a test asserts behaviour.
"""

from __future__ import annotations

_checked: list[str] = []
_missed: list[str] = []


def _check(name: str, value: float, ok: bool, target: str, unit: str) -> bool:
    _checked.append(name)
    if not ok:
        _missed.append(name)
    print(
        f"target {name}: {value:.4g}{unit} (target {target}{unit}: {'ok' if ok else 'MISSED'})",
        flush=True,
    )
    return ok


def at_most(name: str, value: float, limit: float, unit: str = "") -> bool:
    """value <= limit, e.g. a duration in seconds."""
    return _check(name, value, value <= limit, f"<= {limit:g}", unit)


def at_least(name: str, value: float, limit: float, unit: str = "") -> bool:
    """value >= limit, e.g. a rate, or a ratio against a baseline measured in the same run."""
    return _check(name, value, value >= limit, f">= {limit:g}", unit)


def finish() -> int:
    """Print the summary line; 1 if any target was missed (the benchmark's exit code)."""
    if _missed:
        print(f"targets: {len(_checked) - len(_missed)} ok, MISSED: {', '.join(_missed)}")
        return 1
    print(f"targets: all {len(_checked)} ok")
    return 0
