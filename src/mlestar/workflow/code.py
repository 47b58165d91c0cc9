"""A stage's code fingerprint, from the modules it really imports.

The cache key of a stage must change whenever code that can change its
result changes. A hand-kept list of modules goes stale (it did), so the list
is derived: the stage's module is parsed, every ``import`` of an ``mlestar``
module in it (at the top or inside a function) is followed, transitively,
and each package ``__init__`` on the way counts too, since importing a
submodule runs it. Files are parsed, never imported: a fully cached re-run
must not pay for importing torch.

Dynamic imports (``importlib.import_module("mlestar.stages")`` in the stage
registry) are not followed on purpose: the registry loads every stage, and
no stage's result depends on the others' code.

Parsing about a hundred files costs a second, which a fully cached re-run
would pay every time; so each file's import list is kept in an index in the
user cache (``code-imports.json``), keyed by path, mtime and size, as DVC
keeps file hashes. The fingerprint itself always hashes the files' bytes.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlestar.errors import StageError
from mlestar.utils.io import atomic_write_json, read_json, user_cache_dir

PACKAGE = "mlestar"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/mlestar; tests point it at a copy


def module_file(module: str, root: Path | None = None) -> Path | None:
    """The source file of an ``mlestar`` module (``__init__.py`` for a package), or None."""
    return _module_file(module, root or PACKAGE_ROOT)


@lru_cache(maxsize=None)
def _module_file(module: str, root: Path) -> Path | None:
    """Memoized: a closure asks about the same few hundred names thousands of times."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_closure(module: str, root: Path | None = None) -> list[str]:
    """``module`` and every ``mlestar`` module it imports, transitively, sorted.

    Raises:
        StageError: ``module`` is not an ``mlestar`` module with a source file.
    """
    root = root or PACKAGE_ROOT
    if module_file(module, root) is None:
        raise StageError(f"code module {module!r} cannot be found under {root}")
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        if path is not None:
            pending.extend(_with_parents(_imports(path, name, path.name == "__init__.py")))
    _save_index()
    return sorted(name for name in seen if module_file(name, root) is not None)


def closure_hash(module: str, root: Path | None = None) -> str:
    """sha256 over the names and bytes of every file in :func:`module_closure`."""
    root = root or PACKAGE_ROOT
    files = []
    for name in module_closure(module, root):
        path = module_file(name, root)
        assert path is not None  # module_closure keeps only modules with a file
        stat = path.stat()
        files.append((name, path, stat.st_mtime_ns, stat.st_size))
    return _hash_files(tuple(files))


@lru_cache(maxsize=None)
def _hash_files(files: tuple[tuple[str, Path, int, int], ...]) -> str:
    """Hash of the files; cached per (path, mtime, size), so an edited file is read again."""
    digest = hashlib.sha256()
    for name, path, _, _ in files:
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _with_parents(modules: set[str]) -> set[str]:
    """``a.b.c`` -> {``a``, ``a.b``, ``a.b.c``}: importing a submodule runs each parent's ``__init__``."""
    out = set()
    for name in modules:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


INDEX_FILE = "code-imports.json"
_index: dict[str, list[Any]] = {}  # path -> [mtime_ns, size, module, imports]
_index_state = {"loaded": False, "dirty": False}


def _imports(path: Path, module: str, is_package: bool) -> set[str]:
    """Every ``mlestar`` module a file imports, anywhere in it (candidates; the caller keeps real files)."""
    _load_index()
    stat = path.stat()
    entry = _index.get(str(path))
    if entry and entry[:3] == [stat.st_mtime_ns, stat.st_size, module]:
        return set(entry[3])
    found = _parsed_imports(path, module, is_package)
    _index[str(path)] = [stat.st_mtime_ns, stat.st_size, module, list(found)]
    _index_state["dirty"] = True
    return set(found)


def _load_index() -> None:
    if _index_state["loaded"]:
        return
    _index_state["loaded"] = True
    try:
        _index.update(read_json(user_cache_dir() / INDEX_FILE))
    except (OSError, ValueError, TypeError):
        pass  # no index yet, or a damaged one: parse, and write a new one


def _save_index() -> None:
    """Write the index when it changed; a cache that cannot be written is only slower."""
    if not _index_state["dirty"]:
        return
    try:
        atomic_write_json(user_cache_dir() / INDEX_FILE, _index)
        _index_state["dirty"] = False
    except OSError:
        pass


def _parsed_imports(path: Path, module: str, is_package: bool) -> tuple[str, ...]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            # ``from mlestar.stages import s1`` imports a module; ``from mlestar.x import f``
            # names an attribute: both are offered, module_closure keeps those with a file
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return tuple(sorted(name for name in found if name.split(".")[0] == PACKAGE))


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base
