"""The domains' pre-flight: image runs need the images extra (PyTorch); tables never ask for it."""

import importlib.util

import pytest

import mlestar.domains as domains
from mlestar.config.schema import DataConfig
from mlestar.errors import MlestarError


def test_image_data_without_pytorch_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(domains.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MlestarError) as caught:
        domains.preflight(DataConfig(source="digits"))
    assert "needs torch" in caught.value.message and "mlestar[images]" in caught.value.hint


def test_image_data_with_pytorch_passes_and_tables_never_check_it(monkeypatch: pytest.MonkeyPatch) -> None:
    domains.preflight(DataConfig(source="digits"))  # torch is installed here
    monkeypatch.setattr(domains, "require_images_extra", lambda: pytest.fail("a table asked for PyTorch"))
    from mlestar.config import build_config

    domains.preflight(build_config({"data": {"source": "table", "dataset": "iris"}}).data)
