"""Load shipped (or explicitly located) device profiles from TOML, validated and cached.

A profile is named either by its shipped name ("bitmain-s21") or by the absolute path of a
site-local file (what the settings loader resolves `profile = "acme-m1.toml"` to, see
minerd.profiles.paths.site_profile_file).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

from minerd.errors import ProfileError
from minerd.model import RegisterMap, RigModel
from minerd.profiles.paths import drivers_dir
from minerd.profiles.registers import MapKind, parse_register_map
from minerd.profiles.rigs import parse_rig_model

METERS_SUBDIR = "meters"
RIGS_SUBDIR = "rigs"
RIG_REGISTERS_SUBDIR = "rigs/registers"


def _folder(subdir: str, directory: Path | None) -> Path:
    """`directory` replaces drivers_dir()/<subdir> (tests, site-local profiles)."""
    return directory if directory is not None else drivers_dir() / subdir


def _read_toml(folder: Path, name: str, what: str) -> dict[str, object]:
    if Path(name).is_absolute():
        return _read_file(Path(name), what)
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ProfileError(name, [f"invalid {what} profile name {name!r}"])
    path = folder / f"{name}.toml"
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        known = ", ".join(_list(folder)) or "none"
        raise ProfileError(name, [f"no {what} profile {path} (known: {known})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(name, [f"{path}: invalid TOML: {exc}"]) from exc
    except OSError as exc:
        raise ProfileError(name, [f"{path}: cannot read: {exc}"]) from exc


def _read_file(path: Path, what: str) -> dict[str, object]:
    """A site-local profile file; every error names the file."""
    if path.suffix != ".toml":
        raise ProfileError(str(path), [f"{path}: a {what} profile file must end in .toml"])
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ProfileError(str(path), [f"no {what} profile file {path}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(str(path), [f"{path}: invalid TOML: {exc}"]) from exc
    except OSError as exc:
        raise ProfileError(str(path), [f"{path}: cannot read: {exc}"]) from exc


def profile_name(ref: str) -> str:
    """The model name of a profile reference: a file's stem, or the shipped name itself."""
    return Path(ref).stem if Path(ref).is_absolute() else ref


def _list(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml") if p.is_file())


@functools.cache
def load_rig_model(name: str, directory: Path | None = None) -> RigModel:
    """drivers/rigs/<name>.toml as a RigModel; raises ProfileError with every problem."""
    data = _read_toml(_folder(RIGS_SUBDIR, directory), name, "rig")
    return parse_rig_model(data, profile_name(name))


def _load_map(name: str, subdir: str, kind: MapKind, directory: Path | None) -> RegisterMap:
    data = _read_toml(_folder(subdir, directory), name, kind)
    return parse_register_map(data, profile_name(name), kind)


@functools.cache
def load_meter_map(name: str, directory: Path | None = None) -> RegisterMap:
    """drivers/meters/<name>.toml as a RegisterMap of MeterReading quantities."""
    return _load_map(name, METERS_SUBDIR, "meter", directory)


@functools.cache
def load_rig_register_map(name: str, directory: Path | None = None) -> RegisterMap:
    """drivers/rigs/registers/<name>.toml: the register map of a rig behind a container PLC."""
    return _load_map(name, RIG_REGISTERS_SUBDIR, "rig", directory)


def list_profiles(folder: Path) -> list[str]:
    """The profile names (file stems) in a site-local folder; none if it does not exist."""
    return _list(folder)


def list_rig_models(directory: Path | None = None) -> list[str]:
    return _list(_folder(RIGS_SUBDIR, directory))


def list_meter_maps(directory: Path | None = None) -> list[str]:
    return _list(_folder(METERS_SUBDIR, directory))


def list_rig_register_maps(directory: Path | None = None) -> list[str]:
    return _list(_folder(RIG_REGISTERS_SUBDIR, directory))
