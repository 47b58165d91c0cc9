"""mlestar itself as a wheel file, so a bundle can be served without mlestar's source tree.

A bundle's ``requirements.txt`` installs mlestar from ``wheels/`` inside the bundle (mlestar is
not on PyPI). :func:`mlestar_wheel` builds that wheel with pip from the source tree the running
package was imported from, and keeps it in a cache keyed by a hash of the sources
(:func:`source_digest`): building costs about 5 s, so it is paid once per version of the code,
not once per run. When mlestar was installed from a wheel (no source tree beside the package),
there is nothing to build: :func:`mlestar_wheel` returns ``None`` and the caller pins
``mlestar==<version>`` instead (:func:`installed_from` says where that install came from).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlestar.errors import BundleError
from mlestar.utils.io import user_cache_dir

WHEEL_CACHE_ENV = "MLESTAR_WHEEL_CACHE"
_PACKAGE = "mlestar"
_SOURCE_FILES = ("pyproject.toml", "README.md")  # what setuptools reads besides the package itself
_SKIPPED_DIRS = frozenset({"__pycache__"})
_BUILD_TIMEOUT_S = 600  # generous: a cold pip on a slow disk; a hung build must not hang stage 7


def wheel_cache_dir() -> Path:
    """``$MLESTAR_WHEEL_CACHE``, else ``<user cache>/wheels``: where built mlestar wheels are kept.

    Apart from the user cache so a test session can share one wheel across tests that each
    get a private user cache.
    """
    if os.environ.get(WHEEL_CACHE_ENV):
        return Path(os.environ[WHEEL_CACHE_ENV]).expanduser()
    return user_cache_dir() / "wheels"


def package_dir() -> Path:
    """The folder of the imported ``mlestar`` package (this file is ``mlestar/tracking/wheel.py``)."""
    return Path(__file__).resolve().parent.parent


def source_root(package: Path | None = None) -> Path | None:
    """The source tree ``package`` (default: the imported mlestar) was imported from, or ``None``.

    A source tree is the src layout of mlestar's repository: ``<root>/pyproject.toml`` beside
    ``<root>/src/mlestar``. An install into site-packages (from a wheel) has no such folder.
    """
    package = (package or package_dir()).resolve()
    if package.name != _PACKAGE or package.parent.name != "src":
        return None
    root = package.parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def _package_files(root: Path) -> list[Path]:
    """Every file of the source tree that can end up in the wheel, sorted, bytecode left out."""
    files = [root / name for name in _SOURCE_FILES if (root / name).is_file()]
    for folder, dirs, names in os.walk(root / "src" / _PACKAGE):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        files += [Path(folder) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return files


def source_digest(root: Path) -> str:
    """sha256 over the relative path and bytes of each file a wheel of ``root`` is built from.

    Any edit, added or removed file changes it; ``__pycache__`` does not. Conservative: files
    setuptools would leave out of the wheel still count, so a stale wheel is never reused.
    """
    digest = hashlib.sha256()
    for path in _package_files(root):
        relative = path.relative_to(root).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def package_digest() -> str:
    """What a bundle's mlestar is: the running source tree's :func:`source_digest`, else ``mlestar==<version>``.

    Part of the cache key of a stage that ships mlestar (stage 7's wheel): an edit anywhere in the
    package, not only in the modules that stage imports, makes it build a fresh bundle.
    """
    root = source_root()
    return source_digest(root) if root is not None else f"mlestar=={importlib.metadata.version(_PACKAGE)}"


def mlestar_wheel() -> Path | None:
    """The wheel of the running mlestar's source tree, built once per source digest; ``None`` without one.

    The wheel lives in :func:`wheel_cache_dir` under ``<digest[:16]>/``. Concurrent callers (test
    workers, two runs) wait on a file lock, so one builds and the others reuse its wheel.

    Raises:
        BundleError: pip could not build the wheel (its output's tail is in the message).
    """
    root = source_root()
    if root is None:
        return None
    from filelock import FileLock

    digest = source_digest(root)[:16]
    folder = wheel_cache_dir() / digest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f"{digest}.lock")):
        found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
        return found[0] if found else _build_into(root, folder)


def _build_into(root: Path, folder: Path) -> Path:
    """Build the wheel of ``root`` into a fresh ``folder`` (renamed into place whole) and return it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=folder.parent) as scratch:
        # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds, and a
        # copy also pins the wheel to the files that were hashed.
        tree = Path(scratch) / "tree"
        for path in _package_files(root):
            target = tree / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        out = Path(scratch) / "out"
        _pip_wheel(tree, out, root)
        shutil.rmtree(folder, ignore_errors=True)  # a folder a killed build left without its wheel
        os.replace(out, folder)
    return sorted(folder.glob("*.whl"))[0]


def _pip_wheel(tree: Path, out: Path, root: Path) -> None:
    """``pip wheel --no-deps --no-build-isolation``: the build backend comes from this environment."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
               "-w", str(out), str(tree)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BundleError(f"building the mlestar wheel from {root} took over {_BUILD_TIMEOUT_S} s",
                          hint="run the pip command by hand to see where it hangs: " + " ".join(command)) from exc
    if done.returncode != 0 or not list(out.glob("*.whl")):
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise BundleError(f"pip could not build the mlestar wheel from {root}: {' | '.join(tail) or 'no output'}",
                          hint="the bundle ships mlestar as a wheel; install pip, setuptools and wheel into this "
                               "environment (`python -m pip install setuptools wheel`), then re-run the stage")


def installed_from() -> str | None:
    """Where the installed mlestar came from (PEP 610 ``direct_url.json``: a wheel file or URL), if recorded."""
    try:
        text = importlib.metadata.distribution(_PACKAGE).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        return str(json.loads(text)["url"]) if text else None
    except (ValueError, KeyError, TypeError):
        return None
