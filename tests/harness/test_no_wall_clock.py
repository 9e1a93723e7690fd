"""Time enters minerd only through minerd/clock.py (issue 14.5).

Every other module takes an injected Clock (or `system_clock`, or `elapsed_s()` to measure
work), so a scaled or manual clock moves all of the daemon's time at once. This walks the
syntax tree of every module and fails on a direct read of wall or monotonic time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "minerd"

# The only places allowed to read time directly, each with its reason.
ALLOWED = {
    # The clock itself: SystemClock, ScaledClock and elapsed_s() read the wall here.
    "clock.py": "the clock",
    # Progress rate of `minerd discover` (real seconds per host scanned); another change
    # was rewriting this file when the check arrived: move it to elapsed_s() next.
    "cli/discover.py": "progress rate, to move to elapsed_s()",
}

_TIME_FUNCS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns"}
_DATETIME_NOW = {"now", "utcnow", "today"}


def _is_loop(node: ast.expr) -> bool:
    """`loop`, `self.loop`, `self._loop` or `asyncio.get_running_loop()` / get_event_loop()."""
    if isinstance(node, ast.Name):
        return "loop" in node.id
    if isinstance(node, ast.Attribute):
        return "loop" in node.attr
    if isinstance(node, ast.Call):
        return _is_loop(node.func)
    return False


def wall_time_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) of every direct time read in one module's source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            names = {a.name for a in node.names} & _TIME_FUNCS
            found.extend((node.lineno, f"from time import {n}") for n in sorted(names))
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func, owner = node.func.attr, node.func.value
        if isinstance(owner, ast.Name) and owner.id == "time" and func in _TIME_FUNCS:
            found.append((node.lineno, f"time.{func}()"))
        elif isinstance(owner, ast.Name) and owner.id in ("datetime", "date"):
            if func in _DATETIME_NOW:
                found.append((node.lineno, f"{owner.id}.{func}()"))
        elif func == "time" and _is_loop(owner):
            found.append((node.lineno, "loop.time()"))
    return found


@pytest.mark.parametrize(
    ("source", "hits"),
    [
        ("import time\nt = time.time()", ["time.time()"]),
        ("import time\nt = time.monotonic() - 1", ["time.monotonic()"]),
        ("from time import perf_counter", ["from time import perf_counter"]),
        ("import asyncio\nt = asyncio.get_running_loop().time()", ["loop.time()"]),
        ("t = self._loop.time()", ["loop.time()"]),
        ("from datetime import datetime\nd = datetime.now()", ["datetime.now()"]),
        ("t = clock.now_s()", []),
        ("from datetime import datetime\nd = datetime.fromtimestamp(0)", []),
        ("import time\ntime.sleep(0)", []),  # blocking, but not a read of time
    ],
)
def test_the_check_sees_each_form(source: str, hits: list[str]) -> None:
    assert [what for _, what in wall_time_reads(source)] == hits


def test_no_module_outside_the_clock_reads_time() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ALLOWED:
            continue
        offenders.extend(
            f"minerd/{rel}:{line}: {what}"
            for line, what in wall_time_reads(path.read_text(encoding="utf-8"))
        )
    assert not offenders, "read time through minerd.clock instead:\n" + "\n".join(offenders)


def test_the_allow_list_is_still_needed() -> None:
    """An entry whose file no longer reads time must go, so the list only shrinks."""
    stale = [
        rel
        for rel in ALLOWED
        if rel != "clock.py" and not wall_time_reads((PACKAGE / rel).read_text(encoding="utf-8"))
    ]
    assert not stale, f"remove from ALLOWED: {stale}"
