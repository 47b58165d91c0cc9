"""Stage 6's time budget: a share of stage 4's measured training time, split between search and retraining.

The whole stage (search, ablations, focused search and the before/after
retraining) gets ``total = max(refinement.budget_share x T4, budget_floor)``,
where ``T4`` is the training time stage 4 measured
(``implementation/metrics.json``, ``training_time``). The floor (2 minutes by
default) is for runs whose training takes seconds, such as the embedded digits
default: half of 3 s buys nothing, while the floor buys its few trials and
their comparison; on CIFAR-10 the share is far above it. Two costs are estimated from ``T4`` itself:

- the retraining reserve ``R``: one retraining of the refined configuration
  at full length (``T4``), plus another ``T4`` when stage 4's model cannot be
  reused as the "before" side (:func:`mlestar.tuning.compare.stage4_reuse`);
- one trial ``C = T4 x trial epochs / plan epochs x train_fraction`` (an upper
  bound: pruned trials stop early).

The rule, in order:

1. ``total >= R + 2C``: the search gets ``total - R``; the comparison gets what
   is left of ``total`` when it starts (its first seed always runs; further
   seeds only while they fit).
2. else ``total >= 2C``: no retraining fits, so the search gets ``total`` and its
   winner is reported as a recommendation (with the share that would buy its
   comparison); stage 4's model stays.
3. else: no search; the plan stays, and the audit says which share would buy one.

Two trials, because the first trial is the plan itself (warm start): one more
is the least search that can find anything. A full-length retraining alone
costs ``T4``, so a share below 1 never affords a comparison: rule 2 or 3 applies.

Explicit seconds win: ``timeout`` replaces the search's allotment and
``compare_timeout`` the comparison's (a comparison then always runs). With both
set the share has nothing to budget, and the config validator refuses an
explicit ``budget_share`` beside them. ``budget_share: null`` turns the share
off: ``n_trials``, ``timeout`` and ``seeds`` bound the stage as before.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mlestar.config.schema import RefinementConfig

Mode = Literal["search_and_compare", "search_only", "skip"]
MIN_TRIALS = 2  # the plan's own trial (warm start) and one drawn configuration


@dataclass(frozen=True)
class Budget:
    """How stage 6 spends its time. Seconds throughout; None: not limited by time.

    Attributes:
        share: ``budget_share`` (None: no share).
        training_seconds: stage 4's measured training time ``T4``.
        total: ``share x T4``, or None without a share.
        search: the search's allotment (search, ablations, focused search).
        compare: the comparison's explicit allotment (``compare_timeout``); None: what is
            left of ``total`` when it starts (:meth:`compare_seconds`).
        retrain_estimate: ``R``, the retraining reserve.
        trial_estimate: ``C``, one trial at its fidelity.
        mode: which rule of the module docstring applied.
        reason: the rule and its numbers, in words (audit trail, refinement.json).
    """

    share: float | None
    training_seconds: float
    total: float | None
    search: float | None
    compare: float | None
    retrain_estimate: float
    trial_estimate: float
    mode: Mode
    reason: str

    def compare_seconds(self, spent: float) -> float | None:
        """The comparison's budget once ``spent`` seconds of the stage are gone (None: unlimited)."""
        if self.compare is not None:
            return self.compare
        return None if self.total is None else max(0.0, self.total - spent)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers for refinement.json and the audit trail."""
        return asdict(self)


def plan_budget(settings: RefinementConfig, training_seconds: float, *, plan_epochs: int, trial_epochs: int,
                reuse_before: bool) -> Budget:
    """Apply the module's rule to stage 4's measured ``training_seconds``."""
    t4 = max(0.0, float(training_seconds))
    retrain = t4 * (1 if reuse_before else 2)
    trial = t4 * trial_epochs / max(1, plan_epochs) * settings.train_fraction
    total = None if settings.budget_share is None else max(settings.budget_share * t4, settings.budget_floor)
    costs = dict(share=settings.budget_share, training_seconds=t4, total=total, compare=settings.compare_timeout,
                 retrain_estimate=retrain, trial_estimate=trial)
    if total is None:
        return Budget(**costs, search=settings.timeout, mode="search_and_compare",
                      reason="no budget_share: n_trials, timeout and seeds bound the stage")
    needed = f"{MIN_TRIALS} trials ({MIN_TRIALS * trial:.0f}s)"
    head = f"budget_share {settings.budget_share:g} x stage 4's {_secs(t4)} = {_secs(settings.budget_share * t4)}"
    if total > settings.budget_share * t4:
        head += f", raised to budget_floor {total:.0f}s"
    if settings.timeout is not None:  # explicit search time wins; the share then bounds the comparison only
        affords = settings.compare_timeout is not None or total - settings.timeout >= retrain
        return Budget(**costs, search=settings.timeout, mode="search_and_compare" if affords else "search_only",
                      reason=f"{head}; timeout {settings.timeout:.0f}s for the search; " +
                             ("the comparison follows" if affords else
                              f"the rest cannot pay the retraining ({retrain:.0f}s): the winner is only reported"))
    if settings.compare_timeout is not None or total >= retrain + MIN_TRIALS * trial:
        search = total if settings.compare_timeout is not None else total - retrain
        return Budget(**costs, search=search, mode="search_and_compare",
                      reason=f"{head}: {search:.0f}s search, then the before/after "
                             f"(retraining estimated at {retrain:.0f}s from stage 4's time)")
    if total >= MIN_TRIALS * trial:
        return Budget(**costs, search=total, mode="search_only",
                      reason=f"{head} cannot pay {needed} and the retraining ({retrain:.0f}s): the search gets it "
                             f"all and its winner is only reported; budget_share >= "
                             f"{share_needed(t4, retrain + MIN_TRIALS * trial):g} would buy the comparison")
    return Budget(**costs, search=0.0, mode="skip",
                  reason=f"{head} cannot pay {needed}: no search, the plan stays; budget_share >= "
                         f"{share_needed(t4, MIN_TRIALS * trial):g} would buy one")


def share_needed(training_seconds: float, seconds: float) -> float:
    """The smallest share (rounded up to 0.1) of ``training_seconds`` that pays ``seconds``."""
    if training_seconds <= 0:
        return 0.0
    return math.ceil(seconds / training_seconds * 10 - 1e-9) / 10


def _secs(seconds: float) -> str:
    """Whole seconds, or two significant digits below 10 s (a tiny run's 0.6 s is not "1s")."""
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.2g}s"
