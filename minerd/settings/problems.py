"""Turn pydantic's errors into 'key.path[3]: message' lines a site operator can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ValidationError


def key_path(loc: Iterable[str | int]) -> str:
    """('rigs', 3, 'hosts') -> 'rigs[3].hosts'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def join_path(prefix: str, rest: str) -> str:
    if not rest:
        return prefix
    if not prefix:
        return rest
    return prefix + rest if rest.startswith("[") else f"{prefix}.{rest}"


def _show(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def unknown_key_message(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"unknown key (did you mean '{close[0]}'?)" if close else "unknown key"


def translate(err: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> list[str]:
    """Every error of one validation as a problem line under the key path prefix."""
    problems: list[str] = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        path = join_path(prefix, key_path(loc))
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = unknown_key_message(str(loc[-1]), _known_keys(model, loc[:-1]))
        elif kind == "missing":
            msg = "missing required key"
        else:
            msg = str(e["msg"])
            if msg.startswith("Value error, "):
                msg = msg.removeprefix("Value error, ")
            elif not isinstance(e["input"], dict | list | tuple):
                msg = f"{msg} (got {_show(e['input'])})"
        problems.append(f"{path}: {msg}")
    return problems


def _known_keys(model: type[BaseModel] | None, loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the (nested) model at loc, for 'did you mean' hints."""
    current = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def sort_problems(problems: list[str], sections: Sequence[str]) -> list[str]:
    """Order problems as the sections and items appear in the file (stable within one item)."""
    rank = {name: i for i, name in enumerate(sections)}

    def key(problem: str) -> tuple[int, int]:
        head = problem.split(":", 1)[0].split(".", 1)[0]
        name, _, index = head.partition("[")
        number = index.rstrip("]")
        return rank.get(name, len(rank)), int(number) if number.isdigit() else -1

    return sorted(problems, key=key)
