"""Multi-fidelity rungs: the first trial epoch at which ranking trials says more than chance.

Successive halving ranks trials at its first rung (``min_resource`` epochs) and
stops all but the best third; a rung placed where every trial is still near
chance ranks them by noise (a CIFAR-10 trial after one short epoch at peak
learning rate is near chance on validation). The evidence is stage 4's own
validation curve (``implementation/history.json``): the plan's run is
*informative* at the first epoch whose accuracy is both

- beyond chance (``1 / classes``) by three validation sampling errors
  (``3 sqrt(c (1 - c) / n)``), and
- at least half of the way from chance to the run's best accuracy, so the
  ranking is made on most of the learning rather than its first step.

A trial compresses the plan's schedule into its own epochs, so stage 4's epoch
``e`` of ``E`` maps to the same share of the trial's ``T`` epochs,
``ceil(e / E x T)``; and no rung comes before the trial's warm-up (the plan's
``warmup_fraction`` of its steps) has ended. When that epoch is the trial's last,
there is nothing earlier to rank on, and ``auto`` does not prune.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

REDUCTION_FACTOR = 3  # keep the best third at each rung (Optuna's Hyperband default)
NOISE_MULTIPLE = 3.0  # "clearly above chance": three sampling errors
PROGRESS_SHARE = 0.5  # ... and half of the way from chance to the run's best


@dataclass(frozen=True)
class Rungs:
    """The chosen first rung and why.

    Attributes:
        min_resource: epochs a trial trains before its first ranking; None: no earlier epoch is informative.
        rungs: every rung below the trial's last epoch (``min_resource x 3^k``).
        stage4_epoch: the first informative epoch of stage 4's curve (None: none was).
        pruner: the pruner the stage uses (``auto`` resolved).
        reason: the evidence in words (audit trail, refinement.json).
    """

    min_resource: int | None
    stage4_epoch: int | None
    pruner: str
    reason: str
    rungs: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for refinement.json and the audit trail."""
        return asdict(self)


def first_informative_epoch(curve: Sequence[float], *, num_classes: int, val_size: int) -> int | None:
    """The first epoch (from 1) of a validation-accuracy curve that is informative (module docstring)."""
    if not curve or num_classes < 2 or val_size < 1:
        return None
    chance = 1.0 / num_classes
    floor = chance + NOISE_MULTIPLE * math.sqrt(chance * (1 - chance) / val_size)
    halfway = chance + PROGRESS_SHARE * (max(curve) - chance)
    for epoch, value in enumerate(curve, 1):
        if value >= floor and value >= halfway:
            return epoch
    return None


def trial_epoch(stage4_epoch: int, stage4_epochs: int, trial_epochs: int, warmup_fraction: float) -> int:
    """Stage 4's epoch mapped to the same share of a trial's schedule, not before the warm-up ends."""
    mapped = math.ceil(stage4_epoch / max(1, stage4_epochs) * trial_epochs - 1e-9)
    warmup = math.ceil(warmup_fraction * trial_epochs - 1e-9)
    return max(1, mapped, warmup)


def choose_rungs(history: Sequence[dict[str, Any]], *, pruner: str, num_classes: int, val_size: int,
                 trial_epochs: int, warmup_fraction: float = 0.0) -> Rungs:
    """The first rung for ``pruner`` (``auto`` resolves to ``halving`` or ``none``) from stage 4's history."""
    curve = [float(row["val_accuracy"]) for row in history]
    found = first_informative_epoch(curve, num_classes=num_classes, val_size=val_size)
    if found is None:
        evidence = (f"stage 4's validation curve ({len(curve)} epochs, best {max(curve, default=0.0):.3f}) is "
                    f"never clearly above chance ({1 / max(2, num_classes):.3f}, {val_size} images)")
        return _resolved(pruner, None, None, trial_epochs, evidence)
    start = trial_epoch(found, len(curve), trial_epochs, warmup_fraction)
    evidence = (f"stage 4's run first passed both 3 sampling errors above chance and half its way to its best "
                f"({max(curve):.3f}) at epoch {found}/{len(curve)} (val {curve[found - 1]:.3f}); that is epoch "
                f"{start} of a {trial_epochs}-epoch trial (same share of the schedule, not before the "
                f"{warmup_fraction:.0%} warm-up)")
    return _resolved(pruner, start if start < trial_epochs else None, found, trial_epochs, evidence)


def _resolved(pruner: str, start: int | None, found: int | None, trial_epochs: int, evidence: str) -> Rungs:
    """The pruner and its rungs once the first informative trial epoch is known (``start``; None: none before
    the last)."""
    if start is None:
        if pruner == "auto":
            return Rungs(None, found, "none", f"no pruning: {evidence}, which leaves no earlier rung")
        # an explicit halving/hyperband still prunes, from epoch 1 as Optuna would, and says the evidence disagrees
        first = 1 if pruner in ("halving", "hyperband") else None
        return Rungs(first, found, pruner, f"{pruner} as configured ({evidence}; no informative earlier rung)",
                     _ladder(first, trial_epochs))
    name = "halving" if pruner == "auto" else pruner
    ladder = _ladder(start, trial_epochs) if name in ("halving", "hyperband") else []
    return Rungs(start, found, name, f"{name}, first rung at epoch {start}: {evidence}", ladder)


def _ladder(start: int | None, trial_epochs: int) -> list[int]:
    """Rungs ``start x 3^k`` below the trial's last epoch."""
    out, rung = [], start
    while rung is not None and rung < trial_epochs:
        out.append(rung)
        rung *= REDUCTION_FACTOR
    return out
