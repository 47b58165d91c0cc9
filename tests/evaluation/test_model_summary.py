"""Measured model costs: counts follow from the architecture, FLOPs and size scale as they must."""

import pytest
import torch

from mlestar.errors import StageError
from mlestar.models import create_model, list_models
from mlestar.evaluation.model_summary import summarize, summarize_all


def test_resnet18_has_the_textbook_parameter_count() -> None:
    row = summarize("resnet18")
    # 11,173,962 is CIFAR ResNet-18's well-known count (3x3 stem, 10 classes)
    assert row.params == 11_173_962
    assert row.flops == pytest.approx(1.11e9, rel=0.01)
    assert row.size_bytes == pytest.approx(4 * row.params, rel=0.01)  # fp32 weights plus BN statistics


def test_flops_grow_with_the_square_of_the_image_side() -> None:
    small, big = summarize("resnet18", image_size=16), summarize("resnet18", image_size=32)
    assert big.flops == pytest.approx(4 * small.flops, rel=0.01)
    assert big.params == small.params


def test_every_model_is_summarized_and_too_small_inputs_are_left_out() -> None:
    assert [r.name for r in summarize_all()] == list_models()
    names = {r.name for r in summarize_all(image_size=8)}
    assert "resnet18" in names and "airbench" not in names  # airbench pools three times: 16 px at least


def test_resnet18_takes_small_grayscale_inputs_and_scales_with_width() -> None:
    model = create_model("resnet18", num_classes=4, in_channels=1, image_size=8, width=8)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert summarize("resnet18", width=32).params < summarize("resnet18").params / 3


def test_unknown_model_is_refused_with_a_suggestion() -> None:
    with pytest.raises(StageError, match="resnet18"):
        summarize("resnet19")
