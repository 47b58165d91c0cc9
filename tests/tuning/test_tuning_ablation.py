"""Ablations that raise validation accuracy are findings: the best trial without the component is a candidate."""

from __future__ import annotations

import math

import pytest

from mlestar.stages.s6_refinement import candidate, render_ablation
from mlestar.tuning.ablation import ablation_findings

BEST = {"number": 4, "study": "s", "params": {"learning_rate": 0.1}, "value": 0.965}


def row(component: str, setting: str, off, value: float, reference: float = 0.965) -> dict:
    return {"component": component, "change": f"{setting}: x -> {off}", "setting": setting, "off": off,
            "reference": reference, "val_accuracy": value, "impact": reference - value, "seconds": 1.0,
            "error": None, "rank": 1}


def test_a_removal_that_raises_val_beyond_the_sampling_error_is_a_finding() -> None:
    """The digits default: without augmentation val went from 96.5% to 99.3% on 360 validation images."""
    rows = [row("width", "width", 8, 0.90), row("label_smoothing", "label_smoothing", 0.0, 0.970),
            row("augmentation", "augmentation", "none", 0.993)]
    noise = math.sqrt(0.965 * 0.035 / 360)  # 0.0097: +0.5 points is noise, +2.8 points is not
    [finding] = ablation_findings(rows, val_size=360)
    assert finding["component"] == "augmentation" and finding["params"] == {"augmentation": "none"}
    assert finding["gain"] == pytest.approx(0.028) and finding["noise"] == pytest.approx(noise)
    chosen = candidate(BEST, [finding])
    assert chosen["params"] == {"learning_rate": 0.1, "augmentation": "none"} and chosen["value"] == 0.993
    assert "without augmentation" in chosen["source"]
    text = render_ablation(rows, None, [finding])
    assert "removing **augmentation**" in text and "+0.0280" in text and "candidate" in text


def test_with_more_validation_images_a_smaller_gain_counts() -> None:
    rows = [row("label_smoothing", "label_smoothing", 0.0, 0.972)]  # +0.7 points
    assert ablation_findings(rows, val_size=360) == []
    assert [f["component"] for f in ablation_findings(rows, val_size=100_000)] == ["label_smoothing"]


def test_without_findings_the_best_trial_is_the_candidate() -> None:
    assert candidate(BEST, [])["source"] == "best trial 4 of study s"
    assert candidate(None, []) is None
    assert "no removal raised" in render_ablation([row("width", "width", 8, 0.9)], None, [])
    old = {k: v for k, v in row("augmentation", "augmentation", "none", 0.999).items() if k not in ("setting", "off")}
    assert ablation_findings([old], val_size=360) == []  # cached rows of an older version name no setting
