"""The training plan: one typed, frozen record of what stage 3 chose, and typed changes to it.

``plan.json`` (stage 3's, and stage 6's adopted copy) is a :class:`PlanDocument`:
the :class:`TrainingPlan` under ``training``, one reason per setting under
``reasons``, and what changed the plan (remedies under ``adjustments``,
constraint fits under ``constraint_fits``). The JSON keys are the field names.

A plan never changes in place. Remedies, constraint fits and refinement trials
describe what they change as :class:`PlanChange` records (setting, value,
reason); applying them makes a new plan, validated like a loaded one, and on a
document also records each change's reason. Also here: the model
(:func:`build_model`) and the :class:`TrainSpec` (:func:`spec_from_plan`) of a plan.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Iterable, Literal, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, TypeAdapter, ValidationError,
                      field_validator, model_serializer)

from mlestar.config.catalog import suggest
from mlestar.config.schema import AugmentationName, OptimizerName, PrecisionName, ScheduleName
from mlestar.errors import PlanError
from mlestar.training.recipes import RecipeName
from mlestar.training.spec import TrainSpec
from mlestar.utils.io import atomic_write_json, read_json

if TYPE_CHECKING:
    from torch import nn

Share = Annotated[float, Field(ge=0, le=1)]
_SPEC_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
_FILE_HINT = "correct the setting named above, or plan again: mlestar run CONFIG --from action_planning"
_CHANGE_HINT = ("a remedy, constraint fit or trial may set a plan setting only to a value it takes "
                "(the ranges are on TrainingPlan in mlestar/training/plan.py)")


class TrainingPlan(BaseModel):
    """Every training setting of a run, as stage 3 chose it. Units in the descriptions.

    Optional recipe fields (``None``) are left out of ``plan.json``; training
    then uses :class:`TrainSpec`'s default (:meth:`setting` says which value).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Architecture: what create_model builds (saved in model files).
    model: str = Field(min_length=1, description="registered model name (mlestar models)")
    recipe: RecipeName = Field("plain", description="hyperparameter family the model is tuned with; plans "
                                                    "written before recipes existed are plain")
    width: int = Field(ge=2, le=1024, description="base channel width (channels of the first stage)")
    image_size: int = Field(ge=1, description="square input side in pixels (stage 1)")
    in_channels: int = Field(ge=1, description="input channels: 1 gray, 3 RGB (stage 1)")
    num_classes: int = Field(ge=2, description="output classes (stage 1)")
    # Optimisation.
    epochs: int = Field(ge=1, le=1000, description="passes over the training split")
    batch_size: int = Field(ge=1, le=65536, description="images per step")
    micro_batch_size: int | None = Field(None, ge=1, le=65536, description="images per forward/backward pass "
                                         "(gradient accumulation over a step); None: the whole batch")
    optimizer: OptimizerName = Field(description="update rule (training/optim.py)")
    learning_rate: float = Field(gt=0, le=10, description="peak learning rate")
    momentum: float = Field(ge=0, lt=1, description="SGD momentum (Nesterov); AdamW's beta1")
    weight_decay: float = Field(ge=0, le=1, description="L2 on conv/linear weights, not on BN or biases")
    label_smoothing: float = Field(ge=0, lt=1, description="share of target mass spread over all classes")
    schedule: ScheduleName = Field(description="learning-rate shape over the steps (optim.schedule_factor)")
    # Optional recipe settings (the airbench recipe sets them; None: TrainSpec's default).
    bias_lr_scale: float | None = Field(None, gt=0, description="biases and BN shifts learn this many times "
                                                                "faster, with 1/this the decay")
    muon_lr: float | None = Field(None, gt=0, le=10, description="muon: conv filters' peak step size")
    muon_momentum: float | None = Field(None, ge=0, lt=1, description="muon: conv filters' Nesterov momentum")
    warmup_fraction: Share | None = Field(None, description="triangular: share of steps rising to the peak")
    final_lr_fraction: Share | None = Field(None, description="triangular: last step's rate, share of the peak")
    alternating_flip: bool | None = Field(None, description="mirror each image in every other epoch")
    lookahead_every: int | None = Field(None, ge=0, description="steps between lookahead blends; 0: off")
    lookahead_alpha: Share | None = Field(None, description="lookahead blend weight at the end of training")
    whiten_init: bool | None = Field(None, description="airbench stem initialised by patch whitening")
    whiten_bias_epochs: int | None = Field(None, ge=0, description="epochs the whitening bias trains, then freezes")
    channels_last: bool | None = Field(None, description="NHWC memory layout (faster convolutions)")
    # Data handling.
    augmentation: AugmentationName = Field(description="random training transforms")
    translate_pad: int = Field(ge=0, description="pixels of random translation (reflect padding)")
    flip_safe: bool = Field(description="stage 1: a horizontal flip keeps an image's label")
    class_weighting: Literal["none", "balanced"] = Field(description="loss weights per class: equal or inverse "
                                                                     "frequency")
    class_weights: tuple[float, ...] | None = Field(None, description="loss weight per class (balanced only)")
    # Execution.
    precision: PrecisionName = Field(description="autocast precision of the training forward pass")
    device: Literal["cpu", "cuda"] = Field(description="where training runs (where stage 2 measured)")
    compile: bool = Field(False, description="torch.compile the training forward pass")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None: all cores")
    processes: int = Field(1, ge=1, le=64, description="data-parallel processes via torchrun; 1: no DDP")
    seed: int = Field(description="seed of weights, batch order and augmentation")

    # Absent from plan.json when None (only the airbench recipe and balanced weighting set them).
    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset({
        "micro_batch_size", "bias_lr_scale", "muon_lr", "muon_momentum", "warmup_fraction", "final_lr_fraction",
        "alternating_flip", "lookahead_every", "lookahead_alpha", "whiten_init", "whiten_bias_epochs", "channels_last", "class_weights"})

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # plan.json keeps its format: plain-recipe plans never had the airbench keys
        return {k: v for k, v in handler(self).items() if not (v is None and k in self.OMITTED_WHEN_NONE)}

    @classmethod
    def from_json(cls, raw: Any, *, source: str = "training plan", hint: str = _FILE_HINT) -> TrainingPlan:
        """Validate a plan's JSON form (``plan.json['training']``).

        Raises:
            PlanError: naming ``source`` and each setting at fault.
        """
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise plan_error(exc, source, hint=hint) from None

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as ``plan.json['training']`` holds it."""
        return self.model_dump(mode="json")

    def replace(self, **values: Any) -> TrainingPlan:
        """A new plan with ``values`` changed, validated.

        Raises:
            PlanError: an unknown setting or a value it cannot take.
        """
        return type(self).from_json({**self.model_dump(), **values}, source="changed plan", hint=_CHANGE_HINT)

    def apply(self, changes: Iterable[PlanChange]) -> TrainingPlan:
        """A new plan with ``changes`` applied in order (a later change to a setting wins)."""
        return self.replace(**{change.field: change.value for change in changes})

    def setting(self, name: str) -> Any:
        """The value training uses for ``name``: the plan's, or TrainSpec's default for an unset recipe field.

        Raises:
            PlanError: ``name`` is not a plan setting.
        """
        check_setting(name)
        value = getattr(self, name)  # a name known only at run time (search spaces, ablations)
        return _SPEC_DEFAULTS.get(name) if value is None and name in self.OMITTED_WHEN_NONE else value


def check_setting(name: str) -> None:
    """Refuse a name that is not a :class:`TrainingPlan` field.

    Raises:
        PlanError: naming it, with the closest setting.
    """
    if name not in TrainingPlan.model_fields:
        raise PlanError(f"the training plan has no setting {name!r}{suggest(name, list(TrainingPlan.model_fields))}",
                        hint=f"plan settings: {', '.join(TrainingPlan.model_fields)}")


@lru_cache(maxsize=None)
def _field_validator(name: str) -> TypeAdapter[Any]:
    """A validator for one plan field: its type and range, alone."""
    info = TrainingPlan.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info])


@dataclasses.dataclass(frozen=True)
class PlanChange:
    """One setting set to a value, and why (a remedy, a constraint, a refinement trial).

    The setting must be a plan field and the value one it takes: both are
    checked when the change is made, so a bad remedy fails where it is written.

    Raises:
        PlanError: an unknown setting, or a value it cannot take.
    """

    field: str
    value: Any
    reason: str

    def __post_init__(self) -> None:
        check_setting(self.field)
        try:
            value = _field_validator(self.field).validate_python(self.value)
        except ValidationError as exc:
            raise plan_error(exc, "plan change", prefix=self.field, hint=_CHANGE_HINT) from None
        object.__setattr__(self, "value", value)  # coerced, e.g. a list of weights to a tuple

    def describe(self, before: TrainingPlan) -> str:
        """``"epochs: 4 -> 8"``: the setting, its value in ``before`` and the new one."""
        return f"{self.field}: {_show(before.setting(self.field))} -> {_show(self.value)}"


def describe_changes(before: TrainingPlan, changes: Iterable[PlanChange]) -> str:
    """What ``changes`` do to ``before``, for plan.md and the audit trail: ``"a: 1 -> 2, b: x -> y"``."""
    return ", ".join(change.describe(before) for change in changes)


def _show(value: Any) -> str:
    return json.dumps(list(value)) if isinstance(value, tuple) else str(value)


def plan_error(exc: ValidationError, source: str, *, prefix: str = "", hint: str = _FILE_HINT) -> PlanError:
    """A :class:`PlanError` naming ``source`` and each field at fault (``prefix``: the field of a lone value)."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        if error["type"] == "extra_forbidden":
            name = str(error["loc"][-1])
            problems.append(f"{where}: no such setting{suggest(name, list(TrainingPlan.model_fields))}")
        else:
            problems.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return PlanError(f"{source} is not valid: {'; '.join(problems)}", hint=hint)


Reasoned = TypeVar("Reasoned", bound="ReasonedPlan")


class ReasonedPlan(BaseModel):
    """A plan with one reason per setting: what stage 3 builds before it knows the estimate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training: TrainingPlan = Field(description="the settings")
    reasons: dict[str, str] = Field(description="setting -> why it has its value")

    @field_validator("reasons")
    @classmethod
    def _known_settings(cls, reasons: dict[str, str]) -> dict[str, str]:
        unknown = [name for name in reasons if name not in TrainingPlan.model_fields]
        if unknown:
            raise ValueError(f"reasons given for settings the plan does not have: {unknown}")
        return reasons

    def apply(self: Reasoned, changes: Iterable[PlanChange]) -> Reasoned:
        """A new plan with ``changes`` applied and their reasons recorded (a setting unset loses its reason)."""
        changes = list(changes)
        training = self.training.apply(changes)
        reasons = {**self.reasons, **{change.field: change.reason for change in changes}}
        unset = {name for name in TrainingPlan.OMITTED_WHEN_NONE if getattr(training, name) is None}
        return self.model_copy(update={"training": training,
                                       "reasons": {k: v for k, v in reasons.items() if k not in unset}})


class PlanEstimate(BaseModel):
    """Stage 3's estimate of the plan's cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: int = Field(ge=0, description="trainable parameters of the planned model")
    training_seconds: float = Field(ge=0, description="estimated wall time of stage 4, seconds")


class PlanDocument(ReasonedPlan):
    """``plan.json``: the plan, its reasons, what changed it, and its estimated cost."""

    adjustments: tuple[str, ...] = Field((), description="remedies applied, in order: 'remedy (gate g): a: 1 -> 2'")
    constraint_fits: tuple[str, ...] = Field((), description="changes that fit the plan inside the constraints")
    estimate: PlanEstimate = Field(description="size and training time of the plan")
    probes: dict[str, dict[str, Any]] = Field(default_factory=dict, description="throughput probe per candidate "
                                                                               "model (training/probe.py)")
    refined_params: dict[str, Any] | None = Field(None, description="stage 6: the adopted trial's parameters")

    @model_serializer(mode="wrap")
    def _omit_unrefined(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # stage 3's plan has no refined_params key; stage 6 adds it when it adopts a trial
        return {k: v for k, v in handler(self).items() if not (k == "refined_params" and v is None)}

    @classmethod
    def from_json(cls, raw: Any, *, source: str = "plan.json") -> PlanDocument:
        """Validate ``plan.json``'s content.

        Raises:
            PlanError: naming ``source`` and each field at fault.
        """
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise plan_error(exc, source) from None

    @classmethod
    def load(cls, path: Path) -> PlanDocument:
        """Read and validate a ``plan.json`` file.

        Raises:
            PlanError: the file is unreadable or not a valid plan.
        """
        try:
            raw = read_json(path)
        except (OSError, ValueError) as exc:
            raise PlanError(f"cannot read the plan {path}: {exc}", hint="plan again: mlestar run CONFIG "
                                                                        "--from action_planning") from None
        return cls.from_json(raw, source=str(path))

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``plan.json``."""
        return self.model_dump(mode="json")

    def save(self, path: Path) -> Path:
        """Write ``plan.json`` atomically; returns the path."""
        return atomic_write_json(path, self.to_json())


def architecture(plan: TrainingPlan) -> dict[str, Any]:
    """The :func:`create_model` arguments, as saved in model files."""
    return {"name": plan.model, "num_classes": plan.num_classes, "in_channels": plan.in_channels,
            "image_size": plan.image_size, "width": plan.width}


def build_model(plan: TrainingPlan) -> nn.Module:
    """A fresh model for the plan, seeded so the initial weights are reproducible."""
    import torch

    from mlestar.models import create_model

    torch.manual_seed(plan.seed)
    arch = architecture(plan)
    return create_model(arch.pop("name"), **arch)


# TrainSpec's fields the plan holds (all but max_seconds, which the caller sets).
_SPEC_FIELDS = tuple(name for name in _SPEC_DEFAULTS if name in TrainingPlan.model_fields)


def spec_from_plan(plan: TrainingPlan, *, max_seconds: float | None = None) -> TrainSpec:
    """The :class:`TrainSpec` of a plan; unset recipe fields keep TrainSpec's defaults."""
    return TrainSpec(**{name: plan.setting(name) for name in _SPEC_FIELDS}, max_seconds=max_seconds)


def balanced_class_weights(class_counts: list[int]) -> list[float]:
    """Inverse class frequency, scaled so a balanced set gets 1.0 everywhere.

    What ``class_weighting: balanced`` means, for the planner and for trials alike.
    """
    total = sum(class_counts)
    return [total / (len(class_counts) * max(count, 1)) for count in class_counts]
