"""evaluate_on_test: TTA gives predictions only, the same whatever temperature scores the probabilities."""

import numpy as np
import torch

from mlestar.config.schema import DataConfig
from mlestar.data import load_dataset
from mlestar.evaluation.holdout import evaluate_on_test
from mlestar.models import create_model
from mlestar.training.loop import split_to_tensors
from mlestar.training.tta import tta_logits


def test_tta_returns_a_class_per_test_image_that_no_temperature_changes() -> None:
    dataset = load_dataset(DataConfig(source="digits", max_per_class=10), seed=0)
    prep = dataset.preprocessing()
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_channels=1, image_size=prep.image_size).eval()
    runs = [evaluate_on_test(model, dataset, prep, tta="flip_translate", temperature=t) for t in (1.0, 4.0)]
    (m1, p1, tta1), (m4, p4, tta4) = runs
    x, _ = split_to_tensors(dataset.test, prep, torch.device("cpu"))
    expected = tta_logits(model, x, "flip_translate").argmax(1).numpy()
    assert tta1.shape == (len(dataset.test),) and np.issubdtype(tta1.dtype, np.integer)
    np.testing.assert_array_equal(tta1, expected)
    np.testing.assert_array_equal(tta1, tta4)
    assert not np.allclose(p1, p4) and m1["accuracy"] == m4["accuracy"]  # the temperature scores probabilities
    assert evaluate_on_test(model, dataset, prep)[2] is None  # no TTA asked, none made
