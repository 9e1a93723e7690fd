"""Paths relative to the config file, and secrets read from files or environment variables.

Problems name the key path and, for files, the resolved file path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass
class Resolver:
    base_dir: Path
    environ: Mapping[str, str]
    problems: list[str] = field(default_factory=list)

    def path(self, value: Path) -> Path:
        """A path from the config, made absolute against the config file's directory."""
        expanded = value.expanduser()
        return expanded if expanded.is_absolute() else self.base_dir / expanded

    def existing_file(self, key: str, value: Path | None) -> Path | None:
        if value is None:
            return None
        resolved = self.path(value)
        if not resolved.is_file():
            self.problems.append(f"{key}: file not found: {resolved}")
        return resolved

    def secret(
        self,
        prefix: str,
        name: str,
        inline: str | None,
        file: Path | None,
        env: str | None,
        *,
        inline_allowed: bool = True,
    ) -> tuple[str | None, Path | None]:
        """Resolve <name> | <name>_file | <name>_env (at most one); returns (value, abs file)."""
        keys = [f"{name}" if inline_allowed else "", f"{name}_file", f"{name}_env"]
        given = [k for k, v in zip(keys, (inline, file, env), strict=True) if v is not None and k]
        if len(given) > 1:
            self.problems.append(
                f"{prefix}.{given[1]}: set only one of {', '.join(k for k in keys if k)}"
                f" (also {prefix}.{given[0]})"
            )
            return None, None
        if file is not None:
            resolved = self.path(file)
            key = f"{prefix}.{name}_file"
            try:
                text = resolved.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                self.problems.append(f"{key}: file not found: {resolved}")
                return None, resolved
            except (OSError, UnicodeDecodeError) as e:
                self.problems.append(f"{key}: cannot read {resolved}: {e}")
                return None, resolved
            if not text:
                self.problems.append(f"{key}: file is empty: {resolved}")
                return None, resolved
            return text, resolved
        if env is not None:
            key = f"{prefix}.{name}_env"
            value = self.environ.get(env)
            if value is None:
                self.problems.append(f"{key}: environment variable {env} is not set")
                return None, None
            if not value.strip():
                self.problems.append(f"{key}: environment variable {env} is empty")
                return None, None
            return value.strip(), None
        return inline, None

    def secret_fields(
        self,
        prefix: str,
        section: M,
        names: Sequence[str],
        *,
        inline: Mapping[str, str | None] | None = None,
    ) -> M:
        """Each secret `<name>` of a section, by the models' convention, resolved at once.

        Reads `<name>_file` / `<name>_env` (and the inline value given in `inline`, for the
        secrets that may be written in the file); returns a copy with `<name>_file` made
        absolute and the value in the private `_<name>` that `<name>_value` reads.
        """
        inline = inline or {}
        values: dict[str, str | None] = {}
        files: dict[str, Path | None] = {}
        for name in names:
            values[name], files[f"{name}_file"] = self.secret(
                prefix,
                name,
                inline.get(name),
                getattr(section, f"{name}_file"),
                getattr(section, f"{name}_env"),
                inline_allowed=name in inline,
            )
        out = section.model_copy(update=files)
        for name, value in values.items():
            setattr(out, f"_{name}", value)
        return out
