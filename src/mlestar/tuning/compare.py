"""Before/after: the refined configuration against stage 4's, like for like, over several seeds.

Both sides train on the whole training split with their own epochs (trials
may have used fewer) and the same training-time limit as stage 4, once per
seed. The baseline's first seed is the plan's seed. Stage 4's model is that
run, and its validation accuracy is reused instead of trained again, only when
:func:`stage4_reuse` finds it the same run: the same seed, trained on the
training split alone (``trained_on``), of the same data (split hashes). Else
the baseline is retrained for that seed like every other. The
refined configuration is adopted only when its mean gain exceeds both the
noise and ``refinement.min_improvement``. The noise is the larger
seed-to-seed standard deviation of the two sides, but never less than the
sampling error of one accuracy measured on the validation split
(``sqrt(p(1 - p) / n)``): with one seed there is no spread to measure, and a
CIFAR-10 run once adopted a +0.18-point gain that 5,000 validation images
cannot resolve (their sampling error there is 0.54 points).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlestar.training.plan import TrainingPlan
from mlestar.tuning.job import TrialData, TuneJob
from mlestar.tuning.trainer import Retrained, retrain


@dataclass
class Comparison:
    """Validation accuracy per seed for both sides, and the refined model of the plan's seed."""

    seeds: list[int] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    refined: list[float] = field(default_factory=list)
    refined_model: Any = None
    note: str = ""
    val_size: int = 0  # validation images behind each accuracy (0: unknown, no sampling-error floor)

    @property
    def gain(self) -> float:
        """Mean refined minus mean baseline validation accuracy."""
        return statistics.fmean(self.refined) - statistics.fmean(self.baseline)

    @property
    def seed_noise(self) -> float:
        """The larger sample standard deviation of the two sides (0 with one seed)."""
        return max(_std(self.baseline), _std(self.refined))

    @property
    def sampling_error(self) -> float:
        """Standard error of one validation accuracy near the baseline's, from the split's size."""
        if not self.val_size or not self.baseline:
            return 0.0
        p = statistics.fmean(self.baseline)
        return math.sqrt(p * (1 - p) / self.val_size)

    @property
    def noise(self) -> float:
        """What a gain must exceed: the seed noise, at least the validation sampling error."""
        return max(self.seed_noise, self.sampling_error)

    def to_dict(self) -> dict[str, Any]:
        """Numbers for refinement.json and the audit trail."""
        return {"seeds": self.seeds, "baseline": self.baseline, "refined": self.refined,
                "baseline_mean": statistics.fmean(self.baseline), "refined_mean": statistics.fmean(self.refined),
                "baseline_std": _std(self.baseline), "refined_std": _std(self.refined),
                "gain": self.gain, "noise": self.noise, "seed_noise": self.seed_noise,
                "sampling_error": self.sampling_error, "val_size": self.val_size, "note": self.note}


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def stage4_reuse(metrics: dict[str, Any], *, seed: int, split_hashes: dict[str, str],
                 train_size: int) -> tuple[bool, str]:
    """Whether stage 4's run (its ``metrics.json``) is the baseline's first seed, and why (or what differs).

    It is when stage 4 recorded the comparison's seed and the split hashes of
    the data the comparison trains on, and trained on the training split alone
    (``trained_on``: ``train split only (N images ...``, N the split's size). A
    run that does not say is retrained rather than trusted.
    """
    differs = []
    if metrics.get("seed") != seed:
        differs.append(f"seed {metrics.get('seed')!r} (comparison: {seed})")
    recorded = metrics.get("split_hashes") or {}
    for name in ("train", "val"):
        if recorded.get(name) != split_hashes.get(name):
            differs.append(f"{name} split hash {str(recorded.get(name))[:12]!r} "
                           f"(comparison: {str(split_hashes.get(name))[:12]!r})")
    trained_on = str(metrics.get("trained_on", ""))
    if not trained_on.startswith(f"train split only ({train_size} "):
        differs.append(f"trained on {trained_on!r} (comparison: the {train_size}-image training split)")
    if differs:
        return False, "stage 4's run differs: " + "; ".join(differs) + "; the baseline is retrained"
    return True, f"stage 4's run is the baseline's seed {seed}: same seed, training split and split hashes"


def compare(baseline_plan: TrainingPlan, refined_plan: TrainingPlan, stage4_val: float | None, data: TrialData,
            job: TuneJob, *, seeds: int, budget: float | None, max_seconds: float | None, work_dir: Path,
            report: Callable[[str], None] = lambda line: None,
            progress: Callable[[int, int], None] = lambda done, total: None) -> Comparison:
    """Train both sides on up to ``seeds`` seeds, fewer when ``budget`` (seconds) would be exceeded.

    ``progress(done, total)`` counts seeds compared; it ends at ``done == total`` either way.
    ``stage4_val``: stage 4's validation accuracy when its run is the baseline's
    first seed (:func:`stage4_reuse`); None retrains the baseline for that seed too.

    Seeds run in order (plan seed, +1, +2, ...); a further seed starts only
    when the time both sides took for the last one still fits the budget. At
    least the plan's seed always runs.
    """
    first = baseline_plan.seed
    out = Comparison(val_size=len(data.val[1]))
    started, last_cost = time.perf_counter(), 0.0
    for index in range(seeds):
        spent = time.perf_counter() - started
        if index and budget is not None and spent + last_cost > budget:
            out.note = f"{index} of {seeds} seeds: another would pass the {budget:.0f}s comparison budget"
            break
        seed = first + index
        run = _side(refined_plan, seed, data, job, work_dir / f"refined-seed{seed}", max_seconds, report)
        base = stage4_val if index == 0 and stage4_val is not None else \
            _side(baseline_plan, seed, data, job, work_dir / f"baseline-seed{seed}", max_seconds, report).val_accuracy
        out.seeds.append(seed)
        out.refined.append(run.val_accuracy)
        out.baseline.append(base)
        out.refined_model = run.model if index == 0 else out.refined_model
        last_cost = time.perf_counter() - started - spent
        report(f"  seed {seed}: baseline val {base:.4f}, refined val {run.val_accuracy:.4f}")
        progress(index + 1, seeds)
    progress(seeds, seeds)
    return out


def _side(plan: TrainingPlan, seed: int, data: TrialData, job: TuneJob, work_dir: Path,
          max_seconds: float | None, report: Callable[[str], None]) -> Retrained:
    return retrain(plan.replace(seed=seed), data, job, work_dir=work_dir, max_seconds=max_seconds, report=report)


def decide(comparison: Comparison, min_improvement: float) -> tuple[bool, str]:
    """Adopt when the mean gain beats both the noise and ``min_improvement``; the reason states the numbers."""
    gain, noise = comparison.gain, comparison.noise
    n = len(comparison.seeds)
    numbers = (f"mean val gain {gain:+.4f} over {n} seed(s) (baseline {statistics.fmean(comparison.baseline):.4f}, "
               f"refined {statistics.fmean(comparison.refined):.4f}); noise {noise:.4f} (larger seed std "
               f"{comparison.seed_noise:.4f}, validation sampling error {comparison.sampling_error:.4f} on "
               f"{comparison.val_size} images); min_improvement {min_improvement:.4f}")
    if gain <= noise:
        return False, f"kept the baseline: gain within the noise; {numbers}"
    if gain <= min_improvement:
        return False, f"kept the baseline: gain below min_improvement; {numbers}"
    return True, f"adopted the refined configuration: {numbers}"
