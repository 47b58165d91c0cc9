"""The table inference bundle: one folder that serves a table model, written whole, verified on load.

Layout::

    model.onnx      the whole pipeline as ONNX (absent when the learner cannot be converted)
    model.joblib    the TableModel of stage 5 (pipeline, plan, classes, decision threshold)
    schema.json     the input schema (:mod:`.schema`), ``"domain": "tables"``
    metadata.json   project, run id, task, metrics, runtime ("onnx" or "sklearn")
    model_card.md   intended use, data, metrics against targets, the schema, a curl example, a container
    requirements.txt, Dockerfile, wheels/<mlestar wheel>
                    the serving recipe (:mod:`mlestar.tracking.container`), when stage 7 gives one
    manifest.json   file -> {sha256, size}; written last (:mod:`mlestar.tracking.manifest`)

:func:`write_table_bundle` fills a temporary folder beside the target and
moves it into place with ``os.replace``: the bundle appears whole or not at
all. :func:`load_table_bundle` checks every checksum before it loads a file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlestar.config.catalog import METRICS
from mlestar.domains.tables.export import ONNX_FILE, OnnxRunner
from mlestar.domains.tables.model import decide, load_model
from mlestar.domains.tables.schema import SCHEMA_FILE, schema_inputs
from mlestar.errors import BundleError
from mlestar.tracking.container import DOCKERFILE, REQUIREMENTS, WEB_PACKAGES, WHEELS_DIR, Pin, ServingRecipe, pins
from mlestar.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, copy_file, read_json
from mlestar.tracking.manifest import MANIFEST, manifest_of, verify_entry

JOBLIB_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
CARD_FILE = "model_card.md"
BUNDLE_FILES = (ONNX_FILE, JOBLIB_FILE, SCHEMA_FILE, METADATA_FILE, CARD_FILE, MANIFEST)
RUNTIMES = ("onnx", "sklearn")
_HINT = "rebuild it with `mlestar run --from deployment`"
# Exact versions for what computes the answers: the pipeline (unpickled by joblib) and the graph.
_EXACT_PACKAGES = ("numpy", "pandas", "scikit-learn", "joblib")


def write_table_bundle(target: Path, *, joblib_file: Path, onnx_bytes: bytes | None, schema: dict[str, Any],
                       metadata: dict[str, Any], model_card: str, recipe: ServingRecipe | None = None) -> Path:
    """Write the bundle into ``target`` (replacing an older one) and return ``target``.

    The files go into a temporary sibling folder, the manifest last; then the folder is swapped
    in, so a reader never sees a half-written bundle. ``recipe`` adds ``requirements.txt``,
    ``Dockerfile`` and the mlestar wheel in ``wheels/``, all checksummed.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = [JOBLIB_FILE, SCHEMA_FILE, METADATA_FILE, CARD_FILE]
    atomic_write_bytes(staging / JOBLIB_FILE, Path(joblib_file).read_bytes())
    if onnx_bytes is not None:
        atomic_write_bytes(staging / ONNX_FILE, onnx_bytes)
        names.append(ONNX_FILE)
    atomic_write_json(staging / SCHEMA_FILE, schema)
    atomic_write_json(staging / METADATA_FILE, metadata)
    atomic_write_text(staging / CARD_FILE, model_card)
    if recipe is not None:
        names += _write_recipe(staging, recipe)
    atomic_write_json(staging / MANIFEST, manifest_of(staging, names))
    _swap_in(staging, target)
    return target


def _write_recipe(folder: Path, recipe: ServingRecipe) -> list[str]:
    """The serving recipe's files in ``folder``; returns their bundle names."""
    atomic_write_text(folder / REQUIREMENTS, recipe.requirements)
    atomic_write_text(folder / DOCKERFILE, recipe.dockerfile)
    if recipe.wheel is None:
        return [REQUIREMENTS, DOCKERFILE]
    wheel = f"{WHEELS_DIR}/{recipe.wheel.name}"
    copy_file(recipe.wheel, folder / wheel)
    return [REQUIREMENTS, DOCKERFILE, wheel]


def serving_pins(learner_module: str, runtime: str) -> list[Pin]:
    """The third-party packages that serve a table bundle, for its ``requirements.txt``.

    Args:
        learner_module: the module the learner imports (``lightgbm``, ``xgboost``, ``sklearn``); the
            joblib model cannot be unpickled without the distribution that provides it.
        runtime: ``onnx`` adds onnxruntime.
    """
    import importlib.metadata

    learner = importlib.metadata.packages_distributions().get(learner_module, [])
    exact = (*_EXACT_PACKAGES, *(["onnxruntime"] if runtime == "onnx" else []), *learner)
    return pins(tuple(dict.fromkeys(exact)), WEB_PACKAGES)


def _swap_in(staging: Path, target: Path) -> None:
    """``os.replace`` cannot replace a non-empty folder: move the old one aside first, then drop it."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def is_table_bundle(folder: Path) -> bool:
    """True when ``folder`` holds a ``schema.json`` whose ``domain`` is ``tables``."""
    path = Path(folder) / SCHEMA_FILE
    if not path.is_file():
        return False
    try:
        return read_json(path).get("domain") == "tables"
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def bundle_size(folder: Path) -> int:
    """Bytes of every file in the bundle folder."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, eq=False)
class TableBundle:
    """A verified table bundle, ready to answer.

    Attributes:
        scores: raw feature frame -> probabilities ``(rows, classes)`` or values ``(rows,)``.
        runtime: ``onnx`` (onnxruntime) or ``sklearn`` (the joblib model).
    """

    path: Path
    schema: dict[str, Any]
    metadata: dict[str, Any]
    runtime: str
    scores: Callable[[Any], np.ndarray]

    @property
    def task(self) -> str:
        return str(self.schema["task"])

    @property
    def class_names(self) -> list[str]:
        return list(self.schema["class_names"])

    def answers(self, frame: Any) -> list[dict[str, Any]]:
        """One answer per row: ``prediction`` (class name or value), and for classes ``probabilities``."""
        scores = self.scores(frame)
        if self.task == "regression":
            return [{"prediction": float(v)} for v in scores]
        chosen = decide(scores, float(self.schema.get("threshold", 0.5)))
        names = self.class_names
        return [{"prediction": names[int(c)], "probabilities": {n: float(p) for n, p in zip(names, row)}}
                for c, row in zip(chosen, scores)]


def load_table_bundle(folder: Path, runtime: str | None = None) -> TableBundle:
    """Verify ``folder``'s checksums and load it for ``runtime`` (default: the bundle's, ONNX when it has one).

    Raises:
        BundleError: a missing or mismatching file, no manifest, an unknown runtime, or one the
            bundle has no model for.
    """
    folder = Path(folder)
    manifest = _verified_manifest(folder)
    schema, metadata = read_json(folder / SCHEMA_FILE), read_json(folder / METADATA_FILE)
    runtime = runtime or str(metadata.get("runtime") or ("onnx" if ONNX_FILE in manifest else "sklearn"))
    if runtime not in RUNTIMES:
        raise BundleError(f"unknown table runtime {runtime!r}", hint=f"use one of: {', '.join(RUNTIMES)}")
    if runtime == "onnx" and ONNX_FILE not in manifest:
        raise BundleError(f"bundle {folder} has no {ONNX_FILE} (its learner could not be converted)",
                          hint="serve it with runtime 'sklearn'")
    if runtime == "onnx":
        runner = OnnxRunner(folder / ONNX_FILE, schema_inputs(schema), schema["task"],
                            schema.get("target_transform", "none"))
        return TableBundle(folder, schema, metadata, runtime, runner.scores)
    model = load_model(folder / JOBLIB_FILE)
    return TableBundle(folder, schema, metadata, runtime, model.scores)


def _verified_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {folder} has no {MANIFEST}: it is not a bundle or was not finished", hint=_HINT)
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}", hint=_HINT) from None
    missing = [n for n in (SCHEMA_FILE, METADATA_FILE, JOBLIB_FILE) if n not in manifest]
    if missing:
        raise BundleError(f"{path} lists no {', '.join(missing)}", hint=_HINT)
    for name in sorted(manifest):
        verify_entry(folder, name, manifest[name], _HINT)
    return manifest


# --------------------------------------------------------------------------- model card


def json_row(frame: Any, index: int, schema: dict[str, Any]) -> dict[str, Any]:
    """Row ``index`` of a raw feature frame as a request body row (missing values left out)."""
    row: dict[str, Any] = {}
    for column in schema["columns"]:
        value = frame[column["name"]].iloc[index]
        if value is None or (not isinstance(value, str) and bool(np.all(value != value))):
            continue  # NaN / NaT: a missing value is sent by leaving the column out
        if column["kind"] == "datetime":
            row[column["name"]] = value.isoformat()
        elif column["dtype"] == "float":
            row[column["name"]] = float(value)
        else:
            row[column["name"]] = str(value)
    return row


def render_table_card(*, project: str, run_id: str, dataset: str, schema: dict[str, Any],
                      metrics: dict[str, Any], targets: dict[str, float], runtime: str, notes: list[str],
                      example: dict[str, Any], container: str | None = None) -> str:
    """The bundle's ``model_card.md``; ``container`` is the "Run it in a container" section, when given
    (:func:`mlestar.tracking.container.card_section`)."""
    task = schema["task"]
    what = ("predicts the value of" if task == "regression" else f"classifies rows ({task}: "
            f"{', '.join(schema['class_names'])}) by")
    body = json.dumps({"row": example}).replace("'", "'\\''")
    sections = [
        f"# {project}: table model\n\nProduced by mlestar run `{run_id}`.",
        f"## Intended use\n\nIt {what} the column `{schema['target']}` from the input columns below, one JSON "
        "row per prediction. Rows unlike the training data (categories never seen, values far outside the "
        "ranges) are refused or flagged by drift on `/metrics`; it is not meant for them.",
        f"## Data\n\nTrained on `{dataset}`. Served with runtime `{runtime}`.",
        "## Metrics\n\n" + _metrics_table(metrics, targets),
        "## Input schema\n\n" + _schema_table(schema),
        "## Example request\n\n```bash\ncurl -s -X POST http://127.0.0.1:8000/predict "
        f"-H 'Content-Type: application/json' \\\n  -d '{body}'\n```",
        *([container] if container is not None else []),
        "## Notes\n\n" + "\n".join(f"- {n}" for n in notes),
    ]
    return "\n\n".join(sections) + "\n"


def _metrics_table(metrics: dict[str, Any], targets: dict[str, float]) -> str:
    rows = ["| metric | value | target | met |", "|---|---|---|---|"]
    for name in sorted(set(metrics) | set(targets)):
        value, target = metrics.get(name), targets.get(name)
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else "not measured"
        rows.append(f"| {name} | {shown} | {'-' if target is None else f'{target:.4g}'} | "
                    f"{_met(name, value, target)} |")
    return "\n".join(rows) if len(rows) > 2 else "No metrics recorded."


def _met(name: str, value: Any, target: float | None) -> str:
    if target is None:
        return "-"
    if not isinstance(value, (int, float)) or name not in METRICS:
        return "no" if value is None else "?"
    return "met" if (value >= target if METRICS[name].higher_is_better else value <= target) else "missed"


def _schema_table(schema: dict[str, Any]) -> str:
    rows = ["| column | kind | nullable | allowed |", "|---|---|---|---|"]
    for c in schema["columns"]:
        if c["categories"] is not None:
            allowed = ", ".join(c["categories"][:10]) + (" ..." if len(c["categories"]) > 10 else "")
        else:
            allowed = f"{c['range'][0]} .. {c['range'][1]} (seen)" if c["range"] else "any"
        rows.append(f"| {c['name']} | {c['kind']} | {'yes' if c['nullable'] else 'no'} | "
                    f"{str(allowed).replace('|', '/')} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- speed

LATENCY_REPEATS = 50
THROUGHPUT_BATCHES = (32, 64)
THROUGHPUT_BUDGET_S = 0.25


def benchmark(scores: Callable[[Any], Any], frame: Any, *, repeats: int = LATENCY_REPEATS,
              budget_s: float = THROUGHPUT_BUDGET_S) -> dict[str, Any]:
    """Single-row latency (p50, p95 seconds over up to ``repeats`` calls, after a warm-up) and rows/s at
    batches of 32 and 64 rows (calls repeated for ``budget_s`` each).

    ``scores`` is the served runtime's scoring function on raw feature frames (feeds built each call,
    as the server does; no HTTP); ``frame``'s rows are repeated to fill a batch.
    """
    import time

    one = frame.iloc[:1]
    scores(one)
    times: list[float] = []
    began = time.perf_counter()
    # a slow runtime (a scikit-learn pipeline: ~20 ms a row) stops at the budget, after 10 calls at least
    while len(times) < repeats and (len(times) < 10 or time.perf_counter() - began < budget_s * 2):
        start = time.perf_counter()
        scores(one)
        times.append(time.perf_counter() - start)
    rates = {}
    for size in THROUGHPUT_BATCHES:
        batch = frame.iloc[np.arange(size) % len(frame)]
        scores(batch)
        calls, start = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - start < budget_s:
            scores(batch)
            calls += 1
        rates[str(size)] = calls * size / (time.perf_counter() - start)
    return {"latency_s": {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))},
            "throughput": rates}
