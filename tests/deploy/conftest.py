"""Fixtures for the deploy tests: a model, probe images, an export folder and a bundle.

Module-scoped where building is the slow part (exporting, loading), so each
test stays well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deploy_helpers import make_model, write_test_bundle
from torch import nn

from mlestar.deploy import LoadedBundle, export_all, load_bundle


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return make_model()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """16 normalized probe images, (16, 1, 8, 8)."""
    return torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, model: nn.Module, images: torch.Tensor) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_all(model, images, out, ["torchscript", "onnx"], tolerance=1e-4)
    return out


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, export_dir: Path) -> Path:
    """A complete bundle that tests must not modify (copy it first)."""
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), export_dir)


@pytest.fixture(scope="module")
def loaded(bundle_dir: Path) -> LoadedBundle:
    return load_bundle(bundle_dir)
