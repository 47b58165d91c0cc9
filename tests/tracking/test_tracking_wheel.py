"""mlestar as a wheel: the source tree is found, hashed, built once per digest and reused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bundle_recipe import check_wheel

from mlestar.errors import BundleError
from mlestar.tracking import wheel as wheel_module
from mlestar.tracking.wheel import (WHEEL_CACHE_ENV, mlestar_wheel, package_dir, source_digest, source_root,
                                    wheel_cache_dir)


def _tree(folder: Path) -> Path:
    """A minimal src-layout tree: pyproject.toml, README.md, src/mlestar/__init__.py and a cached .pyc."""
    (folder / "src" / "mlestar" / "__pycache__").mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "mlestar"\nversion = "0.0.1"\n')
    (folder / "README.md").write_text("readme\n")
    (folder / "src" / "mlestar" / "__init__.py").write_text('__version__ = "0.0.1"\n')
    (folder / "src" / "mlestar" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"x")
    return folder


def test_the_source_root_is_the_repository_holding_pyproject() -> None:
    root = source_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert package_dir() == root / "src" / "mlestar"


def test_a_site_packages_install_has_no_source_root(tmp_path: Path) -> None:
    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "mlestar"
    installed.mkdir(parents=True)
    (installed.parent / "pyproject.toml").write_text("")  # even a stray pyproject beside it does not count
    assert source_root(installed) is None
    no_pyproject = tmp_path / "repo" / "src" / "mlestar"
    no_pyproject.mkdir(parents=True)
    assert source_root(no_pyproject) is None
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    assert source_root(no_pyproject) == tmp_path / "repo"


def test_the_digest_follows_sources_not_bytecode(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first = source_digest(root)
    (root / "src" / "mlestar" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"y")
    assert source_digest(root) == first
    (root / "src" / "mlestar" / "__init__.py").write_text('__version__ = "0.0.2"\n')
    edited = source_digest(root)
    (root / "src" / "mlestar" / "new.py").write_text("")
    added = source_digest(root)
    (root / "pyproject.toml").write_text('[project]\nname = "mlestar"\nversion = "0.0.2"\n')
    assert len({first, edited, added, source_digest(root)}) == 4


def test_the_cache_folder_is_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         private_cache: Path) -> None:
    monkeypatch.setenv(WHEEL_CACHE_ENV, str(tmp_path / "w"))
    assert wheel_cache_dir() == tmp_path / "w"
    monkeypatch.delenv(WHEEL_CACHE_ENV)
    assert wheel_cache_dir() == private_cache / "wheels"


def test_the_wheel_is_built_once_per_digest_and_holds_this_mlestar(monkeypatch: pytest.MonkeyPatch) -> None:
    built = mlestar_wheel()  # the session's cache: built by the first test that needed it
    assert built is not None and built.parent.name == source_digest(source_root())[:16]
    check_wheel(built)

    def no_build(*args: object) -> None:
        raise AssertionError("a cached wheel was built again")

    monkeypatch.setattr(wheel_module, "_pip_wheel", no_build)
    assert mlestar_wheel() == built


def test_no_source_tree_means_no_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheel_module, "source_root", lambda package=None: None)
    assert mlestar_wheel() is None


def test_a_failed_build_names_the_tree_and_the_fix(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    (root / "pyproject.toml").write_text("[project\nbroken")
    with pytest.raises(BundleError, match="pip could not build the mlestar wheel from") as failure:
        wheel_module._build_into(root, tmp_path / "cache" / "digest")
    assert "setuptools" in failure.value.hint
    assert not (tmp_path / "cache" / "digest").exists()  # nothing half-built left to be reused


def test_a_folder_without_its_wheel_is_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A build killed after the rename cannot happen (the folder is renamed whole); an emptied one is rebuilt."""
    built = mlestar_wheel()
    assert built is not None
    monkeypatch.setenv(WHEEL_CACHE_ENV, str(tmp_path / "w"))
    folder = tmp_path / "w" / built.parent.name
    folder.mkdir(parents=True)  # as if someone deleted the wheel by hand

    def fake_build(tree: Path, out: Path, root: Path) -> None:
        out.mkdir()
        shutil.copy2(built, out / built.name)

    monkeypatch.setattr(wheel_module, "_pip_wheel", fake_build)
    assert mlestar_wheel() == folder / built.name


def test_package_digest_is_the_source_digest_here_and_the_version_when_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from mlestar.tracking import wheel

    root = wheel.source_root()
    assert root is not None and wheel.package_digest() == wheel.source_digest(root)  # tests run from the tree
    monkeypatch.setattr(wheel, "source_root", lambda package=None: None)
    assert wheel.package_digest() == f"mlestar=={importlib.metadata.version('mlestar')}"
