"""Temperature scaling: fitted on validation, lowers NLL and ECE, never changes a prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlestar.evaluation.calibration import (
    MAX_TEMPERATURE,
    TemperatureScaled,
    apply_temperature,
    calibration_summary,
    fit_temperature,
    nll,
)
from mlestar.evaluation.metrics import expected_calibration_error


def _calibrated_logits(n: int, classes: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is calibrated by construction, times ``scale``, and labels drawn from that softmax.

    ``scale > 1`` makes an overconfident model (the true temperature is ``scale``), ``scale < 1`` an
    underconfident one.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 2.0, size=(n, classes))
    probs = np.exp(base - base.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in probs])
    return base * scale, labels


@pytest.mark.parametrize(("scale", "above_one"), [(3.0, True), (0.4, False)])
def test_the_fit_moves_t_the_right_way_and_lowers_nll_and_ece(scale: float, above_one: bool) -> None:
    logits, labels = _calibrated_logits(4000, 10, scale, seed=0)
    t = fit_temperature(logits, labels)
    assert (t > 1.0) is above_one
    assert t == pytest.approx(scale, rel=0.1)  # it recovers the temperature that was put in
    assert nll(logits, labels, t) < nll(logits, labels) - 0.01
    ece_before = expected_calibration_error(apply_temperature(logits, 1.0), labels)[0]
    ece_after = expected_calibration_error(apply_temperature(logits, t), labels)[0]
    assert ece_after < 0.03 < ece_before


def test_t_is_the_nll_minimum_and_the_fit_is_deterministic() -> None:
    logits, labels = _calibrated_logits(1000, 5, 2.0, seed=1)
    t = fit_temperature(logits, labels)
    assert fit_temperature(logits.copy(), labels.copy()) == t
    best = nll(logits, labels, t)
    assert best <= nll(logits, labels, t * 1.01) and best <= nll(logits, labels, t / 1.01)


def test_scaling_never_changes_a_prediction_on_real_logits() -> None:
    """A trained (a few steps) linear model's logits: argmax and ranking survive any T."""
    torch.manual_seed(0)
    x = torch.randn(300, 8)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    model = torch.nn.Linear(8, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(50):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    logits = model(x).detach().numpy()
    t = fit_temperature(logits, y.numpy())
    for temperature in (t, 0.1, 7.0):
        scaled = apply_temperature(logits, temperature)
        assert np.array_equal(scaled.argmax(1), logits.argmax(1))
        assert np.array_equal(np.argsort(-scaled, 1, kind="stable"), np.argsort(-logits, 1, kind="stable"))
        assert np.allclose(scaled.sum(1), 1.0)
    wrapped = TemperatureScaled(model, t)
    assert torch.allclose(wrapped(x), model(x) / t)
    assert np.array_equal(wrapped(x).argmax(1).numpy(), logits.argmax(1))


def test_all_correct_validation_stops_at_a_bound_not_at_zero() -> None:
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 10)
    labels = np.array([0, 1] * 10)
    assert 0 < fit_temperature(logits, labels) < 1  # sharper is always better here; the bound keeps it finite
    assert fit_temperature(-logits, labels) == pytest.approx(MAX_TEMPERATURE, rel=1e-3)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2 labels but 3 logit rows"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="positive finite"):
        apply_temperature(np.zeros((1, 2)), 0.0)
    with pytest.raises(ValueError, match="positive finite"):
        TemperatureScaled(torch.nn.Identity(), -1.0)


def test_the_summary_records_where_t_comes_from_and_both_nlls() -> None:
    logits, labels = _calibrated_logits(500, 4, 2.5, seed=2)
    t = fit_temperature(logits, labels)
    record = calibration_summary(logits, labels, t, test_ece=(0.2, 0.05))
    assert record["fitted_on"] == "validation split" and record["temperature"] == t
    assert record["val_nll_after"] < record["val_nll_before"] == pytest.approx(nll(logits, labels))
    assert (record["ece_before"], record["ece_after"]) == (0.2, 0.05)
