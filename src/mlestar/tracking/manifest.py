"""The checksummed manifest of a bundle folder (a record of what was written), for every domain's bundle.

A manifest maps each file's path relative to the folder to ``{sha256, size}``.
It is written last, so a folder without one is unfinished; a reader checks
every entry (:func:`verify_entry`) before it trusts a file. The image bundle
(:mod:`mlestar.deploy.bundle`) and the table bundle both use these helpers.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from mlestar.errors import BundleError
from mlestar.utils.io import sha256_file

MANIFEST = "manifest.json"


def manifest_of(folder: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"sha256", "size"}}`` of the files ``names`` (relative to ``folder``), sorted by name."""
    return {name: {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
            for name in sorted(names)}


def verify_entry(folder: Path, name: str, entry: dict[str, Any], hint: str) -> None:
    """Check one manifest entry against the file it names.

    Raises:
        BundleError: the name points outside ``folder``, the file is missing, or its size or
            checksum differs (``hint`` says how to rebuild the bundle).
    """
    relative = PurePosixPath(name)
    # An edited manifest must not send the checker (or the loader) outside the bundle.
    if relative.is_absolute() or ".." in relative.parts:
        raise BundleError(f"bundle {folder} manifest names {name!r}, outside the bundle", hint=hint)
    path = folder / relative
    if not path.is_file():
        raise BundleError(f"bundle file {path} is missing", hint=hint)
    if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
        raise BundleError(f"bundle file {path} does not match its checksum in {MANIFEST} "
                          "(edited or corrupted after the bundle was written)", hint=hint)
