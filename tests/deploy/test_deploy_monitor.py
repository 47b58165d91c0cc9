"""Drift monitoring: the formula on known numbers, the reference from stage 1, and the app's exposure."""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import REFERENCE, encode, metric, serving
from PIL import Image

from mlestar.deploy import DriftMonitor, DriftReference, LoadedBundle, create_app, reference_from_analysis

REF = DriftReference.from_dict(REFERENCE)  # mean 0.4, std 0.3; classes 0.5 / 0.25 / 0.25


def _uniform(value: float, n: int = 1) -> np.ndarray:
    """``n`` one-channel 4x4 images whose every pixel is ``value`` (0..1)."""
    return np.full((n, 1, 4, 4), value, dtype=np.float32)


def test_score_is_input_z_shift_plus_class_total_variation() -> None:
    monitor = DriftMonitor(channels=1, num_classes=3, reference=REF)
    monitor.observe_inputs(_uniform(0.7, 2))
    monitor.observe_inputs(_uniform(0.1, 2))
    monitor.observe_predictions([0, 0, 0, 1])
    snap = monitor.snapshot()
    assert snap["images"] == 4 and snap["predictions"] == 4
    assert snap["channel_mean"] == pytest.approx([0.4]) and snap["channel_std"] == pytest.approx([0.3])
    assert snap["class_frequencies"] == pytest.approx([0.75, 0.25, 0.0])
    assert snap["input_shift"] == pytest.approx(0.0, abs=1e-6)  # the means match the reference exactly
    assert snap["class_shift"] == pytest.approx(0.25)  # 0.5 * (0.25 + 0 + 0.25)
    assert snap["score"] == pytest.approx(0.25)


def test_a_brighter_stream_moves_the_input_term_by_z_units() -> None:
    monitor = DriftMonitor(channels=1, num_classes=3, reference=REF)
    monitor.observe_inputs(_uniform(0.85, 3))  # 0.45 above the mean: 1.5 training stds
    monitor.observe_predictions([0, 0, 1, 2])  # exactly the training class mix
    snap = monitor.snapshot()
    assert snap["input_shift"] == pytest.approx(1.5) and snap["class_shift"] == pytest.approx(0.0)
    assert monitor.score() == pytest.approx(1.5)


def test_multi_channel_shift_is_averaged_over_channels() -> None:
    ref = DriftReference((0.5, 0.5, 0.5), (0.25, 0.25, 0.5), (1.0,))
    monitor = DriftMonitor(channels=3, num_classes=1, reference=ref)
    pixels = np.stack([np.full((4, 4), 0.75), np.full((4, 4), 0.5), np.full((4, 4), 0.0)])[None].astype(np.float32)
    monitor.observe_inputs(pixels)
    monitor.observe_predictions([0])
    # |0.25|/0.25 = 1, 0, |0.5|/0.5 = 1 -> mean 2/3
    assert monitor.snapshot()["input_shift"] == pytest.approx(2 / 3)


def test_no_score_before_data_or_without_a_reference() -> None:
    monitor = DriftMonitor(channels=1, num_classes=3, reference=REF)
    assert monitor.snapshot()["score"] is None and np.isnan(monitor.score())
    blind = DriftMonitor(channels=1, num_classes=3)
    blind.observe_inputs(_uniform(0.5))
    blind.observe_predictions([1])
    snap = blind.snapshot()
    assert snap["score"] is None and snap["channel_mean"] == pytest.approx([0.5])


def test_a_reference_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="3 classes; the model has 1 and 10"):
        DriftMonitor(channels=1, num_classes=10, reference=REF)
    with pytest.raises(ValueError, match="one mean and one positive std"):
        DriftReference.from_dict({"channel_mean": [0.1], "channel_std": [0.0], "class_frequencies": [1.0]})
    with pytest.raises(ValueError, match="lacks"):
        DriftReference.from_dict({"channel_mean": [0.1]})


def test_reference_comes_from_stage_1_training_statistics() -> None:
    analysis = {"channel_mean": [0.2, 0.4, 0.6], "channel_std": [0.1, 0.0, 0.3],
                "class_counts": {"train": [30, 10, 0, 60], "val": [1, 1, 1, 1], "test": [5, 5, 5, 5]}}
    ref = reference_from_analysis(analysis)
    assert ref.channel_mean == (0.2, 0.4, 0.6)
    assert ref.channel_std == (0.1, 1e-3, 0.3)  # a constant channel keeps the score finite
    assert ref.class_frequencies == pytest.approx((0.3, 0.1, 0.0, 0.6))  # train only, never val or test
    assert DriftReference.from_dict(ref.to_dict()) == ref


def test_the_app_exposes_drift_on_health_and_metrics(loaded: LoadedBundle) -> None:
    assert loaded.reference == REF
    gray = Image.new("L", (8, 8), 235)  # 235/255 = 0.9216: (0.9216 - 0.4) / 0.3 = 1.739 stds brighter
    with serving(create_app(loaded)) as client:
        before = client.get("/health").json()["drift"]
        answers = [client.post("/predict", files={"file": ("x.png", encode(gray), "image/png")}).json()
                   for _ in range(4)]
        drift = client.get("/health").json()["drift"]
        exposition = client.get("/metrics").text
    assert before["score"] is None and before["images"] == 0
    assert {a["label"] for a in answers} == {"bird"}  # bright images are birds: class 2, 25% in training
    input_shift = (235 / 255 - 0.4) / 0.3
    assert drift["images"] == 4 and drift["channel_mean"] == pytest.approx([235 / 255])
    assert drift["input_shift"] == pytest.approx(input_shift, rel=1e-5)
    assert drift["class_shift"] == pytest.approx(0.75)  # 0.5 * (0.5 + 0.25 + 0.75)
    assert drift["score"] == pytest.approx(input_shift + 0.75, rel=1e-5)
    assert metric(exposition, "mlestar_drift_score") == pytest.approx(drift["score"], rel=1e-6)
    assert metric(exposition, "mlestar_input_channel_mean", channel="0") == pytest.approx(235 / 255, rel=1e-6)
