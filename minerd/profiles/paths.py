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
