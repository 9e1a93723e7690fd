"""Typed reads of one TOML table that collect every problem instead of stopping at the first."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping


class Fields:
    """Reads keys of one table; problems are appended to a shared list, prefixed by `where`."""

    def __init__(self, table: Mapping[str, object], where: str, problems: list[str]) -> None:
        self.table = table
        self.where = where
        self.problems = problems

    def problem(self, message: str) -> None:
        self.problems.append(f"{self.where}{message}")

    def reject_unknown(self, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for key in self.table:
            if key not in allowed_set:
                self.problem(f"unknown key {key!r}")

    def _get(self, key: str, required: bool) -> object | None:
        if key not in self.table:
            if required:
                self.problem(f"missing key {key!r}")
            return None
        return self.table[key]

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key, default is None)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(f"{key} must be a string, got {value!r}")
            return None
        return value

    def number(self, key: str, default: float | None = None, required: bool = True) -> float | None:
        value = self._get(key, required and default is None)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"{key} must be a number, got {value!r}")
            return None
        if not math.isfinite(value):
            self.problem(f"{key} must be finite, got {value!r}")
            return None
        return float(value)

    def integer(self, key: str, default: int | None = None, required: bool = True) -> int | None:
        value = self._get(key, required and default is None)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"{key} must be an integer, got {value!r}")
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(f"{key} must be true or false, got {value!r}")
            return default
        return value

    def table_list(self, key: str, required: bool = True) -> list[Mapping[str, object]]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(f"{key} must be an array of tables")
            return []
        return list(value)

    def string_list(self, key: str, required: bool = True) -> list[str]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{key} must be an array of strings")
            return []
        return list(value)

    def raw(self, key: str, required: bool = True) -> object | None:
        return self._get(key, required)
