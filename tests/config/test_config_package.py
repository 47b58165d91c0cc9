"""``mlestar.config``'s names are imported on first use, so its light submodules stay light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mlestar.config
from mlestar.workflow.code import module_closure


@pytest.mark.parametrize("name", mlestar.config.__all__)
def test_each_public_name_is_the_object_its_module_defines(name: str) -> None:
    module = importlib.import_module(mlestar.config._LAZY[name])
    assert getattr(mlestar.config, name) is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'load_cofig'"):
        mlestar.config.load_cofig  # noqa: B018


def test_the_catalog_and_units_load_without_the_schema() -> None:
    """What ``mlestar status`` reads (metric names, units) must not build the config's pydantic models."""
    code = ("import sys, mlestar.config.catalog, mlestar.config.units; "
            "print('mlestar.config.schema' in sys.modules, 'mlestar.config.loader' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_code_fingerprints_still_follow_the_package_to_every_module_it_names() -> None:
    """A stage importing ``from mlestar.config import load_config`` depends on loader.py and what it uses:
    the package's ``TYPE_CHECKING`` imports are parsed like any other (workflow/code.py)."""
    closure = set(module_closure("mlestar.config"))
    assert {"mlestar.config.loader", "mlestar.config.schema", "mlestar.config.overrides",
            "mlestar.config.legacy", "mlestar.config.units"} <= closure
