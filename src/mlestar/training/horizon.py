"""Where a run is in its planned schedule, so a run the time budget cuts short still anneals.

A fit with ``max_seconds`` stops after the epoch that crosses that much
training time. Stopping alone would cut the learning-rate schedule (and
lookahead's averaging ramp) off mid-way, at a rate far above its end value,
and on a CPU whose speed drifts that is where a tight plan ends up.
:class:`Horizon` maps each actual step to a *nominal* step of the planned
schedule. While the run is on pace the map is the identity, so nothing about
an unhurried run changes. When the fit foresees an earlier last epoch it
calls :meth:`Horizon.retime`: from the current step on, the rest of the
planned schedule is traversed at the pace that ends it at the new last step
(linear decay to the budget, as in budgeted training, Li et al., ICLR 2020).
A later, faster epoch can move the end back out, never past the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Horizon:
    """Actual steps -> nominal steps of a schedule planned over ``planned`` steps.

    Attributes:
        planned: steps the plan's schedule spans (epochs x steps per epoch).
        end: the step the run will now end at (``planned`` unless re-timed).
        knots: ``(step, nominal)`` where the pace last changed, in order; the map
            is linear between knots and from the last knot to ``(end, planned)``.
    """

    planned: int
    end: int = field(init=False)
    knots: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.end = self.planned

    def nominal(self, step: int) -> float:
        """The planned schedule's step that actual ``step`` stands for (``step`` itself until re-timed)."""
        if not self.knots or step < self.knots[0][0]:
            return step
        points = [*self.knots, (self.end, float(self.planned))]
        k = max(i for i, (s, _) in enumerate(points[:-1]) if s <= step)
        (s0, n0), (s1, n1) = points[k], points[k + 1]
        if s1 <= s0:  # re-timed to end where it stands: the schedule's last value
            return n1
        return min(float(self.planned), n0 + (step - s0) * (n1 - n0) / (s1 - s0))

    def retime(self, step: int, end: int) -> bool:
        """End the schedule at ``end`` (clamped to [``step``, ``planned``]), from ``step`` on; True if it moved."""
        end = max(step, min(end, self.planned))
        if end == self.end:
            return False
        self.knots.append((step, self.nominal(step)))
        self.end = end
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "end": self.end, "knots": [list(k) for k in self.knots]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.planned, self.end = int(state["planned"]), int(state["end"])
        self.knots = [(int(s), float(n)) for s, n in state["knots"]]


def epochs_within(max_seconds: float, spent: float, last_epoch_s: float) -> int:
    """Epochs still to run so the run ends after the epoch that crosses ``max_seconds``, at the last epoch's pace.

    0 once ``spent`` is over the budget. The same contract as stopping after the
    crossing epoch, so re-timing never shortens a run that stopping would not.
    """
    if spent >= max_seconds:
        return 0
    return max(1, math.ceil((max_seconds - spent) / max(last_epoch_s, 1e-9)))
