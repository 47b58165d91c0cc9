"""Every registered model builds, runs, and scales with its width; the registry refuses unknown names."""

import pytest
import torch

from mlestar.errors import StageError
from mlestar.models import count_params, create_model, list_models, model_info

MODELS = list_models()


def test_expected_models_are_registered() -> None:
    assert {"small_cnn", "airbench_xs", "airbench_s", "airbench", "airbench_l"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_width_scaling(name: str) -> None:
    info = model_info(name)
    size = max(info.min_image_size, 16)
    model = create_model(name, num_classes=7, in_channels=3, image_size=size)
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    narrow = create_model(name, num_classes=7, in_channels=3, image_size=size, width=info.default_width // 2)
    assert count_params(narrow) < count_params(model)


@pytest.mark.parametrize("name", MODELS)
def test_grayscale_input(name: str) -> None:
    size = max(model_info(name).min_image_size, 16)
    model = create_model(name, num_classes=3, in_channels=1, image_size=size)
    assert model(torch.randn(2, 1, size, size)).shape == (2, 3)


def test_unknown_model_and_too_small_images() -> None:
    with pytest.raises(StageError, match="did you mean 'airbench'"):
        create_model("airbnech", num_classes=10, in_channels=3, image_size=32)
    with pytest.raises(StageError, match="at least 16px"):
        create_model("airbench", num_classes=10, in_channels=1, image_size=8)


def test_airbench_param_counts_match_the_table() -> None:
    counts = {n: count_params(create_model(n, num_classes=10, in_channels=3, image_size=32))
              for n in ("airbench_s", "airbench", "airbench_l")}
    # trainable only: the frozen whitening weights and BN scales are excluded
    assert counts["airbench"] < 2_000_000 and counts["airbench"] > 1_900_000
    assert counts["airbench_s"] < counts["airbench"] < counts["airbench_l"]
