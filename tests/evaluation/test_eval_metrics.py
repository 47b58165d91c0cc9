"""Metrics on hand-made predictions whose answers are worked out in the comments."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mlestar.evaluation import classification_metrics, expected_calibration_error, most_confused_pairs

NAMES = ["a", "b", "c"]

# 10 samples, 3 classes. Confusion matrix (rows true, columns predicted):
#   a: [3, 2, 0]   b: [0, 2, 1]   c: [1, 0, 1]
Y_TRUE = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
PROBS = np.array([
    [0.8, 0.1, 0.1],  # a -> a
    [0.8, 0.1, 0.1],  # a -> a
    [0.8, 0.1, 0.1],  # a -> a
    [0.3, 0.6, 0.1],  # a -> b, a is second: a top-2 hit
    [0.1, 0.6, 0.3],  # a -> b, a is last: a top-2 miss
    [0.1, 0.8, 0.1],  # b -> b
    [0.1, 0.8, 0.1],  # b -> b
    [0.1, 0.3, 0.6],  # b -> c, top-2 hit
    [0.1, 0.1, 0.8],  # c -> c
    [0.6, 0.1, 0.3],  # c -> a, top-2 hit
])


@pytest.fixture(scope="module")
def result() -> dict:
    return classification_metrics(Y_TRUE, PROBS, NAMES)


def test_headline_numbers(result: dict) -> None:
    assert result["n"] == 10
    assert result["accuracy"] == pytest.approx(0.6)  # 3 + 2 + 1 correct
    assert result["balanced_accuracy"] == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)
    assert result["top2_accuracy"] == pytest.approx(0.9)  # k = min(5, 3 - 1); only row 4 misses


def test_per_class_rows(result: dict) -> None:
    rows = {row["class"]: row for row in result["per_class"]}
    assert [row["class"] for row in result["per_class"]] == NAMES
    assert rows["a"]["precision"] == pytest.approx(3 / 4)  # column a: 3 right of 4 predicted
    assert rows["b"]["precision"] == pytest.approx(2 / 4)
    assert rows["c"]["precision"] == pytest.approx(1 / 2)
    assert rows["a"]["recall"] == pytest.approx(3 / 5)
    assert rows["b"]["recall"] == pytest.approx(2 / 3)
    assert rows["c"]["recall"] == pytest.approx(1 / 2)
    assert [row["support"] for row in result["per_class"]] == [5, 3, 2]
    assert rows["a"]["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))


def test_averages(result: dict) -> None:
    assert result["macro_precision"] == pytest.approx((3 / 4 + 2 / 4 + 1 / 2) / 3)
    assert result["macro_recall"] == pytest.approx((3 / 5 + 2 / 3 + 1 / 2) / 3)
    f1 = [row["f1"] for row in result["per_class"]]
    assert result["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert result["weighted_f1"] == pytest.approx((5 * f1[0] + 3 * f1[1] + 2 * f1[2]) / 10)


def test_confusion_matrix_and_most_confused(result: dict) -> None:
    assert result["confusion_matrix"] == [[3, 2, 0], [0, 2, 1], [1, 0, 1]]
    # a->b (2) first; the two 1-count ties ordered by (true, predicted) index
    assert result["most_confused"] == [
        {"true": "a", "predicted": "b", "count": 2},
        {"true": "b", "predicted": "c", "count": 1},
        {"true": "c", "predicted": "a", "count": 1},
    ]


def test_ece_of_the_ten_samples(result: dict) -> None:
    # six correct at confidence 0.8: |1 - 0.8| * 6/10 = 0.12
    # four wrong at confidence 0.6:  |0 - 0.6| * 4/10 = 0.24
    assert result["ece"] == pytest.approx(0.36)


def test_result_is_plain_json(result: dict) -> None:
    assert json.loads(json.dumps(result)) == result


def test_most_confused_keeps_top_five_and_skips_zeros() -> None:
    cm = np.array([[9, 1, 2, 3], [4, 9, 0, 5], [6, 0, 9, 0], [0, 7, 0, 9]])
    pairs = most_confused_pairs(cm, ["w", "x", "y", "z"])
    assert [p["count"] for p in pairs] == [7, 6, 5, 4, 3]
    assert pairs[0] == {"true": "z", "predicted": "x", "count": 7}
    assert most_confused_pairs(np.eye(3, dtype=int), NAMES) == []


def test_top_k_key_follows_class_count() -> None:
    y = np.array([0, 1, 2, 3])
    assert "top3_accuracy" in classification_metrics(y, np.eye(4), list("abcd"))
    assert "top5_accuracy" in classification_metrics(np.arange(10), np.eye(10), list("abcdefghij"))
    binary = classification_metrics(np.array([0, 1]), np.eye(2), ["no", "yes"])
    assert not any(key.startswith("top") for key in binary)


def test_absent_class_scores_zero_without_warnings() -> None:
    y = np.array([0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7]])  # c predicted, never true
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = classification_metrics(y, probs, NAMES)
    c = result["per_class"][2]
    assert (c["precision"], c["recall"], c["support"]) == (0.0, 0.0, 0)
    assert result["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)  # over the classes present


@pytest.mark.parametrize("y, probs", [
    (np.array([0, 1]), np.ones((2, 2)) / 2),  # 2 columns for 3 names
    (np.array([0, 1, 2]), np.ones((2, 3)) / 3),  # 3 labels, 2 rows
    (np.array([], dtype=int), np.ones((0, 3))),  # nothing to score
    (np.array([0, 3]), np.ones((2, 3)) / 3),  # label out of range
])
def test_bad_inputs_raise(y: np.ndarray, probs: np.ndarray) -> None:
    with pytest.raises(ValueError):
        classification_metrics(y, probs, NAMES)


def test_ece_is_zero_when_confidently_right() -> None:
    ece, bins = expected_calibration_error(np.eye(3), np.array([0, 1, 2]))
    assert ece == 0.0
    assert bins["counts"][-1] == 3 and bins["accuracy"][-1] == 1.0


def test_ece_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.65, 0.35]])
    y = np.array([0, 1, 1, 0])
    ece, bins = expected_calibration_error(probs, y, n_bins=15)
    # bin (13/15, 14/15]: two samples, accuracy 0.5, confidence 0.9 -> 0.4 * 2/4 = 0.2
    # bin (10/15, 11/15]: one right at 0.7 -> 0.3 / 4 = 0.075
    # bin (9/15, 10/15]:  one right at 0.65 -> 0.35 / 4 = 0.0875
    assert ece == pytest.approx(0.3625)
    assert bins["ece"] == ece
    assert len(bins["edges"]) == 16 and bins["edges"][0] == 0.0 and bins["edges"][-1] == 1.0
    assert sum(bins["counts"]) == 4
    assert bins["counts"][13] == 2 and bins["accuracy"][13] == 0.5
    assert bins["confidence"][13] == pytest.approx(0.9)
    assert bins["accuracy"][0] is None  # empty bins hold None, not NaN


def test_ece_rejects_zero_bins() -> None:
    with pytest.raises(ValueError):
        expected_calibration_error(np.eye(2), np.array([0, 1]), n_bins=0)
