"""The one typed model of ``mle_star_config.yaml``.

Every section forbids unknown keys; :mod:`mlestar.config.loader` turns
pydantic's errors into messages that carry the key's full path and a
close-match suggestion. Quantities are stored in base units (seconds, bytes,
0..1 fractions) after parsing what people write ("4h", "50MB", "90%").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, ValidationInfo,
                      field_validator, model_validator)

from mlestar.config.catalog import (
    DEFAULT_PRIMARY, METRICS, REMEDIES, normalize_metric, normalize_stage, stage_number, suggest,
)
from mlestar.config.units import (UNIT_PARSERS, format_quantity, in_base_units, parse_duration, parse_fraction,
                                  parse_latency, parse_size, unit_validator)

# Unit-bearing fields: a bare number is refused (50 ms or 50 s?) except in a saved config.json, which
# holds base units (config.units.BASE_UNITS); docs/config.md lists every such key. The exported JSON
# Schema (`mlestar schema`) accepts what people write: a string with a unit ("4h"), or 0.9 for a fraction.
Seconds = Annotated[float, unit_validator(parse_duration, json_schema_input_type=str), Field(gt=0)]
LatencySeconds = Annotated[float, unit_validator(parse_latency, json_schema_input_type=str), Field(gt=0)]
Bytes = Annotated[float, unit_validator(parse_size, json_schema_input_type=str), Field(gt=0)]
Fraction = Annotated[float, unit_validator(parse_fraction, json_schema_input_type=float | str), Field(ge=0, le=1)]
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

    @property
    def domain(self) -> str:
        """The domain that handles this source."""
        return "images"

    @model_validator(mode="after")
    def _path_needed(self) -> DataConfig:
        if self.source == "imagefolder" and self.path is None:
            raise ValueError("data.source 'imagefolder' needs data.path (a folder, .tar, .tar.gz or .zip)")
        return self


ColumnKindName = Literal["numeric", "categorical", "boolean", "datetime", "text", "id"]
BUILTIN_TABLES = ("breast_cancer", "diabetes", "wine", "iris")


class TableDataConfig(Section):
    """A table (``data.source: table``): one file, or a folder with ``train.*`` and optional ``test.*``."""

    source: Literal["table"]
    path: Path | None = Field(None, description="CSV, TSV, Parquet or JSON-lines file, or a folder holding "
                                                "train.<ext> and optionally test.<ext>")
    dataset: Literal["breast_cancer", "diabetes", "wine", "iris"] | None = Field(
        None, description="a table scikit-learn ships (offline), instead of path")
    target: str | None = Field(None, min_length=1, description="column to predict; builtin datasets: 'target'")
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto", description="auto: two values are binary, a few classes multiclass, many numbers regression")
    id_columns: list[str] = Field(default_factory=list, description="row labels: kept out of the features")
    drop_columns: list[str] = Field(default_factory=list, description="columns never used")
    time_column: str | None = Field(None, description="split by time (latest rows to test), never at random")
    group_column: str | None = Field(None, description="no group is split across train, validation and test")
    columns: dict[str, ColumnKindName] = Field(default_factory=dict, description="column -> kind, overriding "
                                                                                 "inference")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="share of train held out for validation")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="share held out for test when there is no "
                                                                "test file")
    max_rows: int | None = Field(None, ge=20, description="sample this many training rows (quick runs)")

    @model_validator(mode="after")
    def _consistent(self) -> TableDataConfig:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("data.source 'table' needs exactly one of data.path (a file or folder) and "
                             f"data.dataset (one of {', '.join(BUILTIN_TABLES)})")
        if self.path is not None and self.target is None:
            raise ValueError("data.target is missing: name the column to predict")
        if self.time_column and self.group_column:
            raise ValueError("set data.time_column or data.group_column, not both: a split cannot both follow "
                             "time and keep groups whole")
        self._check_roles()
        return self

    def _check_roles(self) -> None:
        target = self.target or "target"
        roles = {"id_columns": self.id_columns, "drop_columns": self.drop_columns,
                 "time_column": [self.time_column] if self.time_column else [],
                 "group_column": [self.group_column] if self.group_column else []}
        for role, names in roles.items():
            if target in names:
                raise ValueError(f"data.{role} names the target {target!r}; the target cannot be {role}")

    @property
    def domain(self) -> str:
        """The domain that handles this source."""
        return "tables"

    @property
    def target_name(self) -> str:
        """The target column (builtin datasets call it ``target``)."""
        return self.target or "target"


def _data_kind(value: Any) -> str:
    source = value.get("source") if isinstance(value, dict) else getattr(value, "source", None)
    return "tables" if source == "table" else "images"


AnyDataConfig = Annotated[
    Annotated[DataConfig, Tag("images")] | Annotated[TableDataConfig, Tag("tables")],
    Discriminator(_data_kind),
]
DATA_MODELS: dict[str, type[BaseModel]] = {"images": DataConfig, "tables": TableDataConfig}


class TaskConfig(Section):
    """What success means: the primary metric, secondary metrics and targets.

    Unset metrics follow the domain: images are judged by test accuracy, tables
    by ROC AUC (binary), accuracy (multiclass) or RMSE (regression).
    """

    type: Literal["image_classification", "tabular"] | None = Field(
        None, description="None: follows data.source (table: tabular, else image_classification)")
    primary_metric: MetricName | None = Field(None, description="the metric the project is judged by; "
                                                                "None: the domain's default")
    secondary_metrics: list[MetricName] | None = Field(None, description="None: the domain's defaults")
    targets: dict[MetricName, float | str] = Field(default_factory=dict, description="metric -> target value")

    @field_validator("targets")
    @classmethod
    def _parse_targets(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, float]:
        return {name: _in_metric_unit(name, raw, info, where=f"{name}: ") for name, raw in value.items()}


def _in_metric_unit(metric: str, raw: Any, info: ValidationInfo, *, where: str = "") -> float:
    """``raw`` parsed in the catalog unit of ``metric`` ("90%", "50MB"); errors start with ``where``."""
    try:
        return UNIT_PARSERS[METRICS[metric].unit](raw, base_units=in_base_units(info))
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


class ConstraintsConfig(Section):
    """Hard limits; the planner fits the plan inside them and gates can enforce them."""

    max_training_time: Seconds | None = Field(
        None, description="training time of stage 4, e.g. '4h': stage 3 plans the epochs that fit; a run "
                          "that falls behind re-times its schedule to end after the epoch that crosses it")
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

    @field_validator("threshold")
    @classmethod
    def _parse_threshold(cls, value: float | str, info: ValidationInfo) -> float | str:
        metric = info.data.get("metric")
        return value if metric is None else _in_metric_unit(metric, value, info)  # None: its own error shows

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
        readable = format_quantity(float(self.threshold), spec.unit)
        object.__setattr__(self, "name", self.name or f"{self.metric} {self.op} {readable}")
        if self.on_fail.return_to and stage_number(self.on_fail.return_to) > stage_number(stage):
            raise ValueError(f"gate {self.name!r} cannot return to {self.on_fail.return_to!r}, a later stage")
        return self


# Names training accepts; the config, the typed plan and the search space share them.
OptimizerName = Literal["sgd", "muon", "adam", "adamw"]
ScheduleName = Literal["onecycle", "triangular", "linear", "cosine", "constant"]
AugmentationName = Literal["none", "flip", "translate", "flip_translate"]
PrecisionName = Literal["fp32", "bf16", "fp16"]


class TrainingConfig(Section):
    """The training recipe; ``auto`` values are chosen by stage 3 from stage 1's findings."""

    model: str = Field("auto", description="registered model name or 'auto'")
    width: int | None = Field(None, ge=4, le=1024, description="base channel width; None: the model's default")
    epochs: int = Field(8, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    micro_batch_size: int | None = Field(None, ge=1, le=65536, description="images per forward/backward pass, "
                                         "gradients summed over each step's parts; None: the recipe's (the "
                                         "muon recipe on a CPU: 250), else the whole batch")
    optimizer: OptimizerName = Field("sgd", description="sgd: airbench94's recipe on airbench nets; muon: "
                                                        "airbench94_muon's (Muon on conv filters)")
    learning_rate: float = Field(0.05, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    augmentation: Literal["auto", "none", "flip", "translate", "flip_translate"] = "auto"
    class_weighting: Literal["auto", "none", "balanced"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = Field(False, description="torch.compile the training forward pass; measured not to pay for "
                                             "the airbench nets (docs/benchmarks.md)")
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads; None: all cores")
    processes: int = Field(1, ge=1, le=64, description="data-parallel processes via torchrun (DDP); 1: none")


def _as_list(value: Any) -> list[Any]:
    """``sgd`` -> ``['sgd']``: a ``when`` condition may name one value or several."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


class ParamSpec(Section):
    """One dimension of the refinement search space.

    ``when`` makes the parameter conditional: it is drawn only in trials where
    each named parameter took one of the listed values (``momentum`` with
    ``when: {optimizer: sgd}``); in other trials the plan's value stands.
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = Field(None, description="float/int: smallest value")
    high: float | None = Field(None, description="float/int: largest value (inclusive)")
    log: bool = Field(False, description="float/int: sample on a log scale (low > 0)")
    choices: list[Any] | None = Field(None, description="categorical: the values to choose from")
    when: dict[str, Annotated[list[Any], BeforeValidator(_as_list, json_schema_input_type=Any)]] | None = Field(
        None, description="draw only when these parameters took these values, e.g. {optimizer: sgd}")

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a categorical parameter takes 'choices', not low/high/log")
            if len({repr(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"'choices' lists a value twice: {self.choices}")
        elif self.choices is not None:
            raise ValueError(f"a {self.type} parameter takes low and high, not 'choices'; "
                             "use type: categorical to list values")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("a float/int parameter needs low < high")
        elif self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an int parameter needs whole-number bounds, got {self.low}..{self.high}")
        elif self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs low > 0")
        return self

    def values_possible(self) -> list[Any] | tuple[float, float]:
        """The choices, or the closed range ``(low, high)``."""
        return list(self.choices or []) if self.type == "categorical" else (float(self.low), float(self.high))


@dataclass(frozen=True)
class Tunable:
    """A plan setting the search may vary: its kind and the values training accepts."""

    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()


# Plan settings the refinement search may vary, with the values training accepts.
TUNABLE: dict[str, Tunable] = {
    "learning_rate": Tunable("float", 1e-6, 10.0),
    "weight_decay": Tunable("float", 0.0, 1.0),
    "label_smoothing": Tunable("float", 0.0, 0.99),
    "momentum": Tunable("float", 0.0, 0.999),
    "warmup_fraction": Tunable("float", 0.0, 1.0),
    "lookahead_alpha": Tunable("float", 0.0, 1.0),
    "width": Tunable("int", 4, 1024),
    "batch_size": Tunable("int", 1, 65536),
    "epochs": Tunable("int", 1, 1000),
    "translate_pad": Tunable("int", 0, 8),
    "lookahead_every": Tunable("int", 0, 1000),
    "optimizer": Tunable("categorical", choices=get_args(OptimizerName)),
    "augmentation": Tunable("categorical", choices=get_args(AugmentationName)),
    "schedule": Tunable("categorical", choices=get_args(ScheduleName)),
    "class_weighting": Tunable("categorical", choices=("none", "balanced")),
}


def check_param(name: str, spec: ParamSpec) -> None:
    """Refuse a parameter training cannot take, or values outside what it accepts.

    Raises:
        ValueError: naming the parameter and the accepted kind, range or values.
    """
    if name not in TUNABLE:
        raise ValueError(f"cannot tune {name!r}{suggest(name, list(TUNABLE))}; tunable: {', '.join(TUNABLE)}")
    tunable = TUNABLE[name]
    values = spec.choices if spec.type == "categorical" else [spec.low, spec.high]
    if tunable.kind == "categorical":
        if spec.type != "categorical":
            raise ValueError(f"{name!r} takes one of {list(tunable.choices)}: use type: categorical")
        wrong = [v for v in values if v not in tunable.choices]
        if wrong:
            raise ValueError(f"{name!r} cannot be {wrong}; it takes {list(tunable.choices)}")
        return
    if spec.type == "float" and tunable.kind == "int":
        raise ValueError(f"{name!r} is a whole number: use type: int (or categorical)")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
           or not tunable.low <= v <= tunable.high or (tunable.kind == "int" and not float(v).is_integer())]
    if bad:
        raise ValueError(f"{name!r} cannot be {bad}; it takes {tunable.kind} values in "
                         f"[{tunable.low:g}, {tunable.high:g}]")


def check_conditions(space: dict[str, ParamSpec]) -> None:
    """Every ``when`` names another parameter of the space, with values it can take, and no cycle.

    Raises:
        ValueError: naming the parameter whose condition is wrong.
    """
    for name, spec in space.items():
        for other, values in (spec.when or {}).items():
            if other == name:
                raise ValueError(f"{name!r} has a 'when' on itself")
            if other not in space:
                raise ValueError(f"{name!r} is drawn 'when' {other!r} has a value, but {other!r} is not in the "
                                 f"search space{suggest(other, list(space))}; add it or drop the condition")
            possible = space[other].values_possible()
            never = [v for v in values if (v not in possible if isinstance(possible, list)
                                            else not isinstance(v, (int, float)) or
                                            not possible[0] <= v <= possible[1])]
            if never:
                raise ValueError(f"{name!r} is drawn only when {other!r} is {never}, which {other!r} can never "
                                 f"take ({possible}); the condition is contradictory")
    _check_acyclic(space)


def _check_acyclic(space: dict[str, ParamSpec]) -> None:
    """Conditions must form a tree of dependencies: a draws after b, b after a is impossible."""
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"'when' conditions form a cycle: {' -> '.join((*path, name))}")
        if name not in done:
            for other in space[name].when or {}:
                visit(other, (*path, name))
            done.add(name)

    for name in space:
        visit(name, ())


def _default_space() -> dict[str, ParamSpec]:
    return {
        "learning_rate": ParamSpec(type="float", low=0.01, high=0.3, log=True),
        "weight_decay": ParamSpec(type="float", low=1e-5, high=5e-3, log=True),
        "label_smoothing": ParamSpec(type="float", low=0.0, high=0.2),
    }


class RefinementConfig(Section):
    """Stage 6: an Optuna study around the stage 3 plan, ablations, a seeded before/after comparison."""

    enabled: bool = True
    n_trials: int = Field(4, ge=1, le=10000, description="finished trials (complete or pruned) in all: an upper "
                                                          "bound; the budget usually ends the search first")
    budget_share: float | None = Field(0.5, gt=0, le=20, description="images: the whole stage's budget as a share "
                                                                     "of stage 4's measured training time "
                                                                     "(tuning/budget.py); None: no share")
    budget_floor: Seconds = Field("2 minutes", description="the share's budget is never less than this, so a run "
                                                           "whose training takes seconds still searches")
    timeout: Seconds | None = Field(None, description="wall-time budget of the search, e.g. '20 minutes'; "
                                                      "replaces the share's allotment for the search")
    epochs_per_trial: int | None = Field(None, ge=1, description="None: the plan's epochs")
    train_fraction: float = Field(1.0, gt=0, le=1, description="share of the training split a trial trains on")
    sampler: Literal["tpe", "random", "cmaes"] = Field("tpe", description="cmaes: float/int spaces only")
    pruner: Literal["auto", "halving", "hyperband", "median", "none"] = Field(
        "auto", description="fed by per-epoch val accuracy; auto: successive halving from the first epoch "
                            "stage 4's curve shows informative (tuning/rungs.py), none when there is no such epoch")
    storage: str = Field("sqlite", description="sqlite (study.db in the stage folder), journal (study.journal, "
                                               "several processes on one machine) or a database URL "
                                               "(postgresql://user:pass@host/db, several machines)")
    study_name: str | None = Field(None, min_length=1, description="None: '<run id>-refinement'")
    workers: int = Field(1, ge=1, le=64, description="processes searching on this machine, the stage included")
    heartbeat_interval: Seconds = Field("10s", description="database storages: a trial silent for 3x this is "
                                                          "marked failed (its worker died)")
    ablation: bool = Field(True, description="switch off one component of the best trial at a time")
    focus_fraction: float = Field(0.25, ge=0, le=0.9, description="share of n_trials (and timeout) kept for a "
                                                                  "search over the most important component")
    seeds: int = Field(3, ge=1, le=20, description="seeds per side in the before/after comparison")
    compare_timeout: Seconds | None = Field(None, description="budget of the before/after retraining; fewer "
                                                              "seeds (at least 1) when it would not fit")
    min_improvement: float = Field(0.0, ge=0, le=1, description="val-accuracy gain needed to adopt")
    search_tuned_recipe: bool = Field(False, description="also search the settings a tuned recipe fixed "
                                                         "(airbench's optimiser settings)")
    search_space: dict[str, ParamSpec] = Field(default_factory=_default_space)

    @field_validator("search_space")
    @classmethod
    def _known_params(cls, value: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        if not value:
            raise ValueError("the search space is empty; add at least one parameter or set enabled: false")
        for name, spec in value.items():
            check_param(name, spec)
        check_conditions(value)
        return value

    @field_validator("storage")
    @classmethod
    def _storage_form(cls, value: str) -> str:
        if value not in ("sqlite", "journal") and "://" not in value:
            raise ValueError(f"storage {value!r} is neither sqlite, journal nor a database URL "
                             "(postgresql+psycopg2://user:password@host:5432/db)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RefinementConfig:
        if self.sampler == "cmaes":
            check_continuous(self.search_space)
        if self.pruner in ("halving", "hyperband") and self.epochs_per_trial == 1:
            raise ValueError(f"pruner {self.pruner} stops trials at an epoch before their last, but "
                             "epochs_per_trial is 1; use pruner: auto or none, or more epochs per trial")
        if self.workers > 1 and self.storage == "sqlite":
            raise ValueError(f"workers: {self.workers} need storage: journal (one machine) or a database URL; "
                             "SQLite serialises writers and times out under several processes")
        return self


def check_continuous(space: dict[str, ParamSpec]) -> None:
    """CMA-ES models a fixed real vector: no categorical and no conditional parameter.

    Raises:
        ValueError: naming the parameter CMA-ES cannot search.
    """
    for name, spec in space.items():
        if spec.type == "categorical":
            raise ValueError(f"sampler cmaes searches continuous spaces only, but {name!r} is categorical "
                             f"({len(spec.choices or [])} choice(s)); use sampler: tpe, or make it float/int")
        if spec.when:
            raise ValueError(f"sampler cmaes needs every parameter in every trial, but {name!r} is conditional "
                             "('when'); use sampler: tpe")


class TablesConfig(Section):
    """How table models are fitted (read only when ``data.source`` is ``table``)."""

    learner: Literal["auto", "lightgbm", "xgboost", "catboost", "hist_gradient_boosting", "linear"] = Field(
        "auto", description="auto: LightGBM when its measured fit fits the budget, else the linear baseline")
    cv_folds: int = Field(0, ge=0, le=20, description="k-fold cross-validation on train before the final fit "
                                                      "(out-of-fold scores recorded); 0: none")
    early_stopping_rounds: int = Field(50, ge=1, description="rounds without validation improvement before "
                                                             "boosting stops")
    n_jobs: int = Field(0, ge=0, le=256, description="threads per fit; 0: all cores")
    params: dict[str, Any] = Field(default_factory=dict, description="learner parameters over its defaults")
    ensemble: bool = Field(True, description="stage 6 tries a soft-voting ensemble of the best distinct trials")

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("cv_folds: 1 fold is no cross-validation; use 0 (none) or 2 and more")
        return value


class EvaluationConfig(Section):
    """Stage 5 options beyond what it always reports."""

    tta: Literal["auto", "none", "flip", "flip_translate"] = Field(
        "auto", description="test-time augmentation, reported apart from plain accuracy; auto: the recipe's "
                            "(airbench: flip_translate) when stage 1 found flips label-preserving, else none")
    gallery_size: int = Field(32, ge=0, le=256, description="misclassified test images shown")
    runtime: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="what computes stage 5's logits; auto: ONNX Runtime when the model exports and "
                            "matches PyTorch on validation images (faster on CPUs), else PyTorch")
    tta_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="precision of TTA's extra views (reported apart, never served); auto: bf16 on "
                            "PyTorch when training ran bf16 and this CPU computes bf16 natively, else fp32")


class ServeConfig(Section):
    """How ``mlestar serve`` runs a bundle by default; stage 7 writes these into the bundle's metadata.

    Every value can be overridden on the command line (``mlestar serve --help``).
    """

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    runtime: Literal["torchscript", "onnx"] | None = Field(
        None, description="runtime served by default; None: the adopted int8 model's, else torchscript "
                           "when exported, else onnx")
    max_batch_size: int = Field(32, ge=1, le=1024, description="images per model call; 1 turns batching off")
    max_wait: LatencySeconds = Field("5ms", le=1.0, description="longest a request waits for others to batch with")
    max_queue: int = Field(1024, ge=1, description="requests waiting for the model; beyond it: 503")
    max_upload_size: Bytes = Field("10MiB", description="largest accepted image file, e.g. '10MB'")
    max_pixels: int = Field(40_000_000, ge=1, description="largest accepted width x height (decompression bombs)")
    max_batch_images: int = Field(64, ge=1, le=4096, description="images in one /predict/batch request")
    top_k: int = Field(5, ge=1, description="classes listed, best first, in each answer")


class AlertsConfig(Section):
    """Thresholds of the Prometheus alert rules stage 7 writes into the bundle (``alerts.yml``)."""

    max_drift_score: float = Field(0.5, gt=0, description="input/prediction drift score (the accuracy proxy)")
    max_error_rate: Fraction = Field(0.05, description="share of requests answered with an error")
    max_latency_p95: LatencySeconds | None = Field(
        None, description="served /predict p95; None: constraints.max_inference_latency, else 250ms")
    window: Seconds = Field("5min", description="rate window and how long a condition must hold, e.g. '5m'")


class DeploymentConfig(Section):
    """Stage 7: export formats, parity, optional int8 quantization, serving and alert defaults."""

    formats: list[Literal["torchscript", "onnx"]] = Field(default_factory=lambda: ["torchscript", "onnx"])
    parity_tolerance: float = Field(1e-4, gt=0, description="max |export - PyTorch| on probe images")
    min_top1_agreement: Fraction = Field(0.98, description="share of probe images whose export top-1 must "
                                                           "match PyTorch (0.98 allows one near-tie in 64)")
    quantize: Literal["none", "dynamic", "onnx"] = Field(
        "none", description="int8: 'dynamic' = torch dynamic quantization of Linear layers (TorchScript); "
                            "'onnx' = onnxruntime dynamic quantization of Conv, MatMul and Gemm (ONNX)")
    max_quantized_accuracy_drop: Fraction = Field(
        0.01, description="validation accuracy the int8 model may lose and still be adopted into the bundle")
    serve: ServeConfig = Field(default_factory=ServeConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _quantized_format_exported(self) -> DeploymentConfig:
        needs = {"dynamic": "torchscript", "onnx": "onnx"}.get(self.quantize)
        if needs and needs not in self.formats:
            raise ValueError(f"deployment.quantize {self.quantize!r} quantizes the {needs} export; "
                             f"add {needs!r} to deployment.formats")
        if self.serve.runtime and self.serve.runtime not in self.formats:
            raise ValueError(f"deployment.serve.runtime {self.serve.runtime!r} is not in deployment.formats "
                             f"{list(self.formats)}")
        return self


class MlestarConfig(Section):
    """Everything one ``mle_star_config.yaml`` can say."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    seed: int = Field(0, ge=0, description="seeds Python, NumPy and PyTorch")
    deterministic: bool = Field(True, description="ask PyTorch for deterministic kernels")
    data: AnyDataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)
    gates: list[GateConfig] = Field(default_factory=list)
    remedies: list[str] = Field(default_factory=lambda: list(REMEDIES), description="remedies the runner may use")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    refinement: RefinementConfig = Field(default_factory=RefinementConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)

    @property
    def domain(self) -> str:
        """``images`` or ``tables``: the domain whose stages run this config."""
        return "tables" if isinstance(self.data, TableDataConfig) else "images"

    @property
    def table_task(self) -> str | None:
        """The table's declared task; None for images and for ``auto`` (inferred in stage 1)."""
        task = getattr(self.data, "task", None)
        return None if task in (None, "auto") else task

    @model_validator(mode="after")
    def _task_fits_domain(self) -> MlestarConfig:
        expected = "tabular" if self.domain == "tables" else "image_classification"
        if self.task.type not in (None, expected):
            raise ValueError(f"task.type {self.task.type!r} does not fit data.source {self.data.source!r}; "
                             f"use {expected!r} or leave it out")
        task = self.table_task
        default = DEFAULT_PRIMARY["images" if self.domain == "images" else task] if (
            self.domain == "images" or task) else None  # an inferred task gets its default in stage 2
        secondary = self.task.secondary_metrics
        if secondary is None:
            secondary = ["macro_f1", "latency_p95"] if self.domain == "images" else ["latency_p95"]
        object.__setattr__(self.task, "type", expected)
        object.__setattr__(self.task, "primary_metric", self.task.primary_metric or default)
        object.__setattr__(self.task, "secondary_metrics", secondary)
        check_metric_domain(self, task)
        self._image_sections_unused()
        return self

    def _image_sections_unused(self) -> None:
        """A table config that sets image-only settings is told where they went, not silently ignored.

        Compared with the defaults, not by which keys were given: a saved run's config.json lists
        every section and must load again (resume, reproduce).
        """
        if self.domain != "tables":
            return
        if self.training != TrainingConfig():
            raise ValueError("training: configures image training; a table run reads the `tables` section "
                             "(learner, cv_folds, early_stopping_rounds, n_jobs, params)")
        if self.refinement.search_space != _default_space():
            raise ValueError("refinement.search_space: applies to images; a table run searches the learner's "
                             "registered space (src/mlestar/domains/tables/learners.py)")

    @field_validator("remedies")
    @classmethod
    def _known_remedies(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in REMEDIES:
                raise ValueError(f"unknown remedy {name!r}{suggest(name, REMEDIES)}")
        return value


def check_metric_domain(config: MlestarConfig, task: str | None) -> None:
    """Every metric the config names (primary, secondary, targets, gates) exists in its domain and task.

    ``task`` is None while the table's task is ``auto``: stage 2 repeats the check once it is inferred.

    Raises:
        ValueError: naming the key, the metric and the metrics that fit.
    """
    named = [("task.primary_metric", config.task.primary_metric)]
    named += [("task.secondary_metrics", m) for m in config.task.secondary_metrics or []]
    named += [("task.targets", m) for m in config.task.targets]
    named += [(f"gates[{i}].metric", g.metric) for i, g in enumerate(config.gates)]
    for key, metric in named:
        if metric is None or METRICS[metric].applies(config.domain, task):
            continue
        fitting = [m for m, spec in METRICS.items() if spec.applies(config.domain, task)]
        what = f"{config.domain}" + (f" ({task})" if task else "")
        raise ValueError(f"{key}: {metric!r} is not produced for {what}{suggest(metric, fitting)}")
