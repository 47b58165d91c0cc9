"""The one typed model of ``mle_star_config.yaml``.

Every section forbids unknown keys; :mod:`mlestar.config.loader` turns
pydantic's errors into messages that carry the key's full path and a
close-match suggestion. Quantities are stored in base units (seconds, bytes,
0..1 fractions) after parsing what people write ("4h", "50MB", "90%").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mlestar.config.catalog import METRICS, REMEDIES, normalize_metric, normalize_stage, suggest, stage_number
from mlestar.config.units import UNIT_PARSERS, format_quantity, parse_duration, parse_fraction, parse_latency, parse_size

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
LatencySeconds = Annotated[float, BeforeValidator(parse_latency), Field(gt=0)]
Bytes = Annotated[float, BeforeValidator(parse_size), Field(gt=0)]
Fraction = Annotated[float, BeforeValidator(parse_fraction), Field(ge=0, le=1)]
StageName = Annotated[str, BeforeValidator(normalize_stage)]
MetricName = Annotated[str, BeforeValidator(normalize_metric)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ProjectConfig(Section):
    """Who and where: the name shows in run ids, reports and the model card."""

    name: str = Field("mlestar-project", min_length=1, description="project name, used in run ids")
    description: str = Field("", description="free text for the model card")
    runs_dir: Path = Field(Path("runs"), description="where run folders and the lineage database live")


class DataConfig(Section):
    """Where the images come from and how they are split."""

    source: Literal["digits", "cifar10", "imagefolder"] = Field("digits", description="registered data source")
    path: Path | None = Field(None, description="folder or archive (imagefolder) or data_dir (cifar10)")
    download: bool = Field(False, description="cifar10 only: download when not in `path`")
    image_size: int | None = Field(None, ge=4, le=1024, description="resize to this square size in pixels")
    channels: Literal[1, 3] | None = Field(None, description="convert to 1 (gray) or 3 (RGB) channels")
    val_fraction: float = Field(0.1, gt=0, lt=0.5, description="share of train held out for validation")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="share held out for test when the source has none")
    max_per_class: int | None = Field(None, ge=2, description="cap training images per class (quick runs)")
    cache_dir: Path | None = Field(None, description="decoded-image cache; default $MLESTAR_CACHE_DIR or "
                                                     "~/.cache/mlestar")

    @model_validator(mode="after")
    def _path_needed(self) -> DataConfig:
        if self.source == "imagefolder" and self.path is None:
            raise ValueError("data.source 'imagefolder' needs data.path (a folder, .tar, .tar.gz or .zip)")
        return self


class TaskConfig(Section):
    """What success means: the primary metric, secondary metrics and targets."""

    type: Literal["image_classification"] = "image_classification"
    primary_metric: MetricName = Field("test_accuracy", description="the metric the project is judged by")
    secondary_metrics: list[MetricName] = Field(default_factory=lambda: ["macro_f1", "latency_p95"])
    targets: dict[MetricName, float | str] = Field(default_factory=dict, description="metric -> target value")

    @field_validator("targets")
    @classmethod
    def _parse_targets(cls, value: dict[str, Any]) -> dict[str, float]:
        return {name: UNIT_PARSERS[METRICS[name].unit](raw) for name, raw in value.items()}


class ConstraintsConfig(Section):
    """Hard limits; the planner fits the plan inside them and gates can enforce them."""

    max_training_time: Seconds | None = Field(None, description="wall time for stage 4, e.g. '4h'")
    max_model_size: Bytes | None = Field(None, description="fp32 weights on disk, e.g. '50MB'")
    max_inference_latency: LatencySeconds | None = Field(None, description="batch-1 p95, e.g. '50ms'")
    max_peak_memory: Bytes | None = Field(None, description="peak resident memory, e.g. '4GB'")


class OnFail(Section):
    """What the runner does when a gate fails."""

    return_to: StageName | None = Field(None, description="stage to re-run from; default: action_planning")
    max_attempts: int = Field(2, ge=1, le=10, description="total attempts of the gated stage")


class GateConfig(Section):
    """A declarative quality gate: ``metric op threshold`` checked after ``stage``."""

    name: str | None = None
    metric: MetricName
    op: Literal[">=", "<=", ">", "<", "=="] = ">="
    threshold: float | str
    stage: StageName | None = Field(None, description="defaults to the stage that produces the metric")
    on_fail: OnFail = Field(default_factory=OnFail)

    @model_validator(mode="after")
    def _resolve(self) -> GateConfig:
        spec = METRICS[self.metric]
        producer = spec.stage
        stage = self.stage or producer
        if stage_number(producer) > stage_number(stage):
            raise ValueError(
                f"gate on {self.metric!r} is checked at stage {stage!r}, but the metric is only "
                f"produced later, by {producer!r}; set stage: {producer}"
            )
        object.__setattr__(self, "stage", stage)
        object.__setattr__(self, "threshold", UNIT_PARSERS[spec.unit](self.threshold))
        readable = format_quantity(float(self.threshold), spec.unit)
        object.__setattr__(self, "name", self.name or f"{self.metric} {self.op} {readable}")
        if self.on_fail.return_to and stage_number(self.on_fail.return_to) > stage_number(stage):
            raise ValueError(f"gate {self.name!r} cannot return to {self.on_fail.return_to!r}, a later stage")
        return self


class TrainingConfig(Section):
    """The training recipe; ``auto`` values are chosen by stage 3 from stage 1's findings."""

    model: str = Field("auto", description="registered model name or 'auto'")
    width: int | None = Field(None, ge=4, le=1024, description="base channel width; None: the model's default")
    epochs: int = Field(8, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    learning_rate: float = Field(0.05, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    augmentation: Literal["auto", "none", "flip", "translate", "flip_translate"] = "auto"
    class_weighting: Literal["auto", "none", "balanced"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None: all cores")
    processes: int = Field(1, ge=1, le=64, description="data-parallel processes via torchrun (DDP); 1: none")


class ParamSpec(Section):
    """One dimension of the refinement search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("a float/int parameter needs low < high")
        elif self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs low > 0")
        return self


# Parameters of TrainingConfig that the refinement search may vary.
TUNABLE = ("learning_rate", "weight_decay", "label_smoothing", "width", "batch_size", "epochs",
           "momentum", "optimizer", "augmentation", "schedule")


def _default_space() -> dict[str, ParamSpec]:
    return {
        "learning_rate": ParamSpec(type="float", low=0.01, high=0.3, log=True),
        "weight_decay": ParamSpec(type="float", low=1e-5, high=5e-3, log=True),
        "label_smoothing": ParamSpec(type="float", low=0.0, high=0.2),
    }


class RefinementConfig(Section):
    """Stage 6: an Optuna study around the stage 3 plan."""

    enabled: bool = True
    n_trials: int = Field(4, ge=1, le=10000)
    timeout: Seconds | None = Field(None, description="wall-time budget of the study")
    epochs_per_trial: int | None = Field(None, ge=1, description="None: the plan's epochs")
    sampler: Literal["tpe", "random", "cmaes"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    min_improvement: float = Field(0.0, ge=0, le=1, description="val-accuracy gain needed to adopt")
    search_space: dict[str, ParamSpec] = Field(default_factory=_default_space)

    @field_validator("search_space")
    @classmethod
    def _known_params(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        if not value:
            raise ValueError("the search space is empty; add at least one parameter or set enabled: false")
        for name in value:
            if name not in TUNABLE:
                raise ValueError(f"cannot tune {name!r}{suggest(name, TUNABLE)}; tunable: {', '.join(TUNABLE)}")
        return value


class EvaluationConfig(Section):
    """Stage 5 options beyond what it always reports."""

    tta: Literal["auto", "none", "flip", "flip_translate"] = Field(
        "auto", description="test-time augmentation, reported apart from plain accuracy; auto: the recipe's "
                            "(airbench: flip_translate) when stage 1 found flips label-preserving, else none")
    gallery_size: int = Field(32, ge=0, le=256, description="misclassified test images shown")


class ServeConfig(Section):
    """Where ``mlestar serve`` listens by default."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)


class DeploymentConfig(Section):
    """Stage 7: export formats, parity tolerance, serving defaults."""

    formats: list[Literal["torchscript", "onnx"]] = Field(default_factory=lambda: ["torchscript", "onnx"])
    parity_tolerance: float = Field(1e-4, gt=0, description="max |export - PyTorch| on probe images")
    serve: ServeConfig = Field(default_factory=ServeConfig)


class MlestarConfig(Section):
    """Everything one ``mle_star_config.yaml`` can say."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    seed: int = Field(0, ge=0, description="seeds Python, NumPy and PyTorch")
    deterministic: bool = Field(True, description="ask PyTorch for deterministic kernels")
    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    gates: list[GateConfig] = Field(default_factory=list)
    remedies: list[str] = Field(default_factory=lambda: list(REMEDIES), description="remedies the runner may use")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    refinement: RefinementConfig = Field(default_factory=RefinementConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)

    @field_validator("remedies")
    @classmethod
    def _known_remedies(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in REMEDIES:
                raise ValueError(f"unknown remedy {name!r}{suggest(name, REMEDIES)}")
        return value
