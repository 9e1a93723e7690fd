"""Where the shipped device profiles live."""

from __future__ import annotations

from pathlib import Path

import minerd


def drivers_dir() -> Path:
    """The drivers/ folder: inside the package in a wheel, next to it in an editable install."""
    package_dir = Path(minerd.__file__).resolve().parent
    for candidate in (package_dir / "drivers", package_dir.parent / "drivers"):
        if candidate.is_dir():
            return candidate
    # Name both places so a broken install says where it looked.
    raise FileNotFoundError(
        f"no drivers folder at {package_dir / 'drivers'} or {package_dir.parent / 'drivers'}"
    )


PROFILE_SUFFIX = ".toml"


def is_profile_path(ref: str) -> bool:
    """A reference written as a path (absolute, or with a folder) rather than a name."""
    return "/" in ref or "\\" in ref or Path(ref).is_absolute()


def site_profile_file(ref: str, subdir: str, site_dir: Path | None, base_dir: Path) -> Path | None:
    """The site-local file a profile reference names, or None for a shipped profile.

    `ref` is a name ("acme-m1"), a file name ("acme-m1.toml") or a path (absolute, or
    relative to base_dir, the config file's folder). Names and file names are looked up in
    <site_dir>/<subdir>/ first, so a site can add models (or override a shipped one) without
    touching the installed package.
    """
    if is_profile_path(ref):
        path = Path(ref)
        return path if path.is_absolute() else (base_dir / path).absolute()
    if site_dir is None:
        return None
    file_name = ref if ref.endswith(PROFILE_SUFFIX) else ref + PROFILE_SUFFIX
    candidate = site_dir / subdir / file_name
    return candidate.absolute() if candidate.is_file() else None


def shipped_profile_name(ref: str) -> str:
    """'acme-m1.toml' -> 'acme-m1': the name a shipped profile is loaded by."""
    return ref.removesuffix(PROFILE_SUFFIX)
