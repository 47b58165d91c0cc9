"""Progress reporting for the table domain's long steps, through a callback the stages pass down.

The domain sits below the stages, so it never sees a stage context: each long
function takes ``progress`` (:data:`Progress`, ``(label, done, total)``, the
same contract as ``StageContext.progress``) or a two-argument ``(done, total)``
callable whose label the caller chose. :class:`StepCounter` follows a
function's named steps; :func:`round_callbacks` follows a boosting learner
round by round, at most a few times a second.
"""

from __future__ import annotations

import time
from typing import Any, Callable

Progress = Callable[[str, int, int], None]
"""``(label, done, total)``: the CLI draws one bar per label and closes it at ``done == total``."""

Count = Callable[[int, int], None]
"""``(done, total)`` of one labelled piece of work."""

ROUND_REPORT_SECONDS = 0.25  # at most four reports a second: a bar needs no more, a round may take 50 µs


def silent(label: str, done: int, total: int) -> None:
    """The default :data:`Progress`: report nothing."""


class StepCounter:
    """Reports the steps of one function as ``(label, done, total)``.

    ``done=0`` is reported at once; :meth:`advance` after each step; :meth:`finish`
    reports ``done == total`` however many steps were skipped (an optional step not
    needed), which closes the bar.
    """

    def __init__(self, progress: Progress, label: str, total: int) -> None:
        self._progress, self.label, self.total, self.done = progress, label, total, 0
        progress(label, 0, total)

    def advance(self) -> None:
        """Count one more step done (never past ``total``)."""
        self.done = min(self.total, self.done + 1)
        self._progress(self.label, self.done, self.total)

    def finish(self) -> None:
        """Report the last step done, if it has not been."""
        if self.done < self.total:
            self.done = self.total
            self._progress(self.label, self.total, self.total)


class RoundTicker:
    """Counts boosting rounds and reports them at most every :data:`ROUND_REPORT_SECONDS`.

    The total is the planned number of rounds; early stopping usually ends the fit before
    it, so :meth:`finish` (called after the fit, however it ended) closes the bar.
    """

    def __init__(self, count: Count, total: int, every_s: float = ROUND_REPORT_SECONDS) -> None:
        self._count, self.total, self._every = count, max(int(total), 1), every_s
        self._last = time.monotonic()
        count(0, self.total)

    def tick(self, rounds_done: int) -> None:
        """``rounds_done`` rounds are finished; reported only when the last report is old enough."""
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._count(min(rounds_done, self.total), self.total)

    def finish(self) -> None:
        """Report every round done: the fit ended (all rounds, or stopped early)."""
        self._count(self.total, self.total)


def lightgbm_callback(ticker: RoundTicker) -> Callable[[Any], None]:
    """A LightGBM callback (called after each round with its ``CallbackEnv``) feeding ``ticker``."""
    def callback(env: Any) -> None:
        ticker.tick(env.iteration - env.begin_iteration + 1)

    return callback  # no ``order``: LightGBM runs it before early stopping, so the last round is counted


def xgboost_callback(ticker: RoundTicker) -> Any:
    """An XGBoost ``TrainingCallback`` feeding ``ticker`` after each round (never stops training)."""
    from xgboost.callback import TrainingCallback

    class _Rounds(TrainingCallback):  # type: ignore[misc]
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            ticker.tick(epoch + 1)
            return False  # False: keep training

    return _Rounds()
