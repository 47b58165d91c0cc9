"""The stage contract, its registry, and the context a stage runs in.

A stage is a class with declared inputs (config paths and earlier stages'
artifacts), declared outputs (files under its folder) and a ``run`` method.
The runner owns everything else: ordering, caching, gates, lineage, audit.
Stages register with ``@register_stage``; ``list_stages()`` returns them in
workflow order and the contract test is parametrized over it.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from mlestar.config.catalog import METRICS, STAGE_ORDER, stage_folder, suggest
from mlestar.config.schema import MlestarConfig
from mlestar.errors import StageError
from mlestar.tracking.audit import AuditTrail
from mlestar.utils.io import read_json, sha256_file, sha256_json
from mlestar.workflow.code import closure_hash


@dataclass
class StageResult:
    """What a stage returns: metrics (keys from the catalog) and a one-line summary."""

    metrics: dict[str, float | None]
    summary: str


@dataclass
class StageContext:
    """Everything a stage may touch while it runs.

    Attributes:
        config: the validated config.
        run_id, run_dir: the run being executed.
        out_dir: this stage's folder; every declared output goes here.
        attempt: 1 on the first execution, +1 per loop-back to this stage.
        resume: True when the runner resumes an interrupted execution (training
            then continues from its last checkpoint).
        adjustments: remedies chosen after failed gates, oldest first.
        audit: the run's audit trail; use :meth:`decide` for decisions.
        load_dataset: returns the run's dataset, loaded once per process.
        report: callback for progress lines (the CLI prints them).
        progress: callback ``(label, done, total)`` for long work (the CLI draws a bar).
    """

    config: MlestarConfig
    run_id: str
    run_dir: Path
    out_dir: Path
    stage: str
    attempt: int
    resume: bool
    adjustments: list[dict[str, Any]]
    audit: AuditTrail
    load_dataset: Callable[[], Any]
    report: Callable[[str], None] = lambda message: None
    progress: Callable[[str, int, int], None] = lambda label, done, total: None
    declared: tuple[str, ...] = ()
    consumed: list[tuple[str, str, str]] = field(default_factory=list)

    def input(self, ref: str) -> Path:
        """Path of a declared input (``'stage_name/file'``); records the read in lineage.

        Raises:
            StageError: ``ref`` is not in the stage's declared ``inputs``, or the file is missing.
        """
        if ref not in self.declared:
            raise StageError(f"stage {self.stage!r} read {ref}, which it does not declare in its inputs",
                             hint=f"add {ref!r} to the stage's `inputs`, so its cache key and lineage include it")
        path = resolve_ref(self.run_dir, ref)
        if not path.exists():
            raise StageError(f"stage {self.stage!r} needs {ref}, which is missing from run {self.run_id}",
                             hint=f"re-run from the stage that makes it: mlestar run --from {ref.split('/')[0]}")
        self.consumed.append(("artifact", ref, sha256_file(path)))
        return path

    def read_json(self, ref: str) -> Any:
        """Load a declared JSON input; a damaged file is a :class:`StageError` naming it."""
        path = self.input(ref)
        try:
            return read_json(path)
        except ValueError as exc:
            raise StageError(f"{ref} of run {self.run_id} is not valid JSON ({exc})",
                             hint=f"re-run from the stage that makes it: mlestar run --resume {self.run_id} "
                                  f"--from {ref.split('/')[0]}") from None

    def decide(self, what: str, choice: Any, reason: str, **data: Any) -> None:
        """Record a decision (what was chosen and why) in the audit trail."""
        self.audit.append("decision", stage=self.stage, what=what, choice=choice, reason=reason, **data)

    def dataset(self) -> Any:
        """The run's :class:`~mlestar.data.ImageDataset` (loaded once per process)."""
        return self.load_dataset()


def resolve_ref(run_dir: Path, ref: str) -> Path:
    """``'implementation/model.pt'`` -> ``run_dir/04_implementation/model.pt``."""
    stage, _, rel = ref.partition("/")
    return run_dir / stage_folder(stage) / rel


class Stage(ABC):
    """Base class of the seven stages. Subclasses set the class attributes and ``run``.

    Class attributes:
        name: canonical stage name (one of ``STAGE_ORDER``).
        title: heading for reports and the CLI.
        config_paths: config sections or dotted fields the stage reads; part of its cache key.
        inputs: earlier stages' files it reads (``'stage/file'``); part of its cache key.
            ``ctx.input`` refuses anything else, and while the stage runs, opening a file
            of the run that is neither declared nor in its own folder fails.
        outputs: exact paths of the files it must leave in its folder (no globs).
        uses_adjustments: True when remedies change what it does (the planner).
        uses_data_fingerprint: True when the raw data's fingerprint is part of its cache key.
        ships_package: True when its outputs hold mlestar itself (a bundle's wheel): its cache key
            then covers every source file of the package, not only the modules it imports.
        reads_test: True when the stage may see the test split; for every other stage
            ``ctx.dataset()`` has an empty test split, so no choice can depend on it.
        uses_torch: False when the stage never imports torch (the runner then skips seeding it).
        domain: the domain whose runs it serves (``images``, ``tables``): each domain registers
            all seven stages, and the runner takes the ones of the config's domain.
    """

    name: ClassVar[str]
    domain: ClassVar[str] = "images"
    title: ClassVar[str]
    config_paths: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    uses_adjustments: ClassVar[bool] = False
    uses_data_fingerprint: ClassVar[bool] = False
    ships_package: ClassVar[bool] = False
    reads_test: ClassVar[bool] = False
    uses_torch: ClassVar[bool] = True

    @abstractmethod
    def run(self, ctx: StageContext) -> StageResult:
        """Do the stage's work; write every declared output under ``ctx.out_dir``.

        Raises:
            MlestarError: for problems the user can fix (bad data, missing input).
        """

    @classmethod
    def metrics(cls) -> tuple[str, ...]:
        """Metrics this stage produces for its domain, from the catalog.

        A table stage reports every one of them; those its run's task lacks are ``None``.
        """
        return tuple(name for name, spec in METRICS.items() if spec.stage == cls.name and cls.domain in spec.domains)

    @classmethod
    def code_hash(cls) -> str:
        """sha256 over the stage's module and every mlestar module it imports, transitively.

        Derived from the imports themselves (:mod:`mlestar.workflow.code`), never
        from a list kept by hand: editing any module a stage uses changes its key.
        """
        return closure_hash(cls.__module__)


def select_config(config: MlestarConfig, paths: tuple[str, ...]) -> dict[str, Any]:
    """The values at dotted ``paths`` (``'training.device'``), JSON-ready."""
    dumped = config.model_dump(mode="json")
    out: dict[str, Any] = {}
    for path in paths:
        value: Any = dumped
        for part in path.split("."):
            value = value[part]
        out[path] = value
    return out


def config_fingerprint(config: MlestarConfig, paths: tuple[str, ...]) -> str:
    """Hash of the config values a stage reads."""
    return sha256_json(select_config(config, paths))


# Stage 1's record of the data, in both domains; it holds the data's content fingerprint, so a stage
# reading it is keyed on the content (the runner leaves data locations out of such a stage's key).
DATASET_REF = "situation_analysis/dataset.json"


# registry ------------------------------------------------------------------
_STAGES: dict[tuple[str, str], type[Stage]] = {}
DOMAINS: tuple[str, ...] = ("images", "tables")


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage to the registry under ``(cls.domain, cls.name)``."""
    if cls.name not in STAGE_ORDER:
        raise StageError(f"stage class {cls.__name__} has unknown name {cls.name!r}")
    if cls.domain not in DOMAINS:
        raise StageError(f"stage class {cls.__name__} has unknown domain {cls.domain!r}")
    _STAGES[(cls.domain, cls.name)] = cls
    return cls


# The modules the registry loads, by name: each registers its stage on import. Named as strings,
# not imported, so the registry (a lower layer) does not depend on the stages' code.
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "images": (
        "mlestar.stages.s1_situation_analysis",
        "mlestar.stages.s2_task_definition",
        "mlestar.stages.s3_action_planning",
        "mlestar.stages.s4_implementation",
        "mlestar.stages.s5_evaluation",
        "mlestar.stages.s6_refinement",
        "mlestar.stages.s7_deployment",
    ),
    "tables": tuple(f"mlestar.stages.tables.s{i}_{name}" for i, name in enumerate(STAGE_ORDER, start=1)),
}


def _ensure_loaded(domain: str) -> None:
    if domain not in STAGE_MODULES:
        raise StageError(f"unknown domain {domain!r}{suggest(domain, list(STAGE_MODULES))}")
    for module in STAGE_MODULES[domain]:
        importlib.import_module(module)


def list_stages(domain: str = "images") -> list[str]:
    """Names of the stages registered for ``domain``, in workflow order."""
    _ensure_loaded(domain)
    return [name for name in STAGE_ORDER if (domain, name) in _STAGES]


def create_stage(name: str, domain: str = "images") -> Stage:
    """Instantiate the stage registered as ``name`` for ``domain``."""
    return stage_class(name, domain)()


def stage_class(name: str, domain: str = "images") -> type[Stage]:
    """The registered class for ``name`` in ``domain`` (no instance).

    Raises:
        StageError: no such stage, with the closest name.
    """
    _ensure_loaded(domain)
    if (domain, name) not in _STAGES:
        raise StageError(f"unknown stage {name!r}{suggest(name, list(STAGE_ORDER))}")
    return _STAGES[(domain, name)]


def dumps_canonical(obj: Any) -> str:
    """Stable JSON used in fingerprints and comparisons."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
