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


def test_airbench_stem_whitens_two_by_two_patches() -> None:
    """After init_whitening the stem's first half maps patches to (nearly) unit, uncorrelated channels."""
    torch.manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.randn(2000, 3, 10, 10), 3, 1)  # neighbouring pixels correlate
    x[:, 1] += 0.5 * x[:, 0]                                                 # and so do channels
    model = create_model("airbench", num_classes=10, in_channels=3, image_size=32)
    model.init_whitening(x)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(x, model.whiten.weight[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(out.T)
    assert torch.allclose(cov.diagonal(), torch.ones(12), atol=0.1)
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 1e-3
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])
