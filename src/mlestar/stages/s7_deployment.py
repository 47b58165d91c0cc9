"""Stage 7, deployment preparation: exports with parity checks, optional int8, a benchmarked bundle.

Exports the adopted model (stage 6) to TorchScript and ONNX and checks each
against PyTorch on real validation images (logit difference and top-1
agreement). With ``deployment.quantize`` it makes an int8 copy, measures its
accuracy change on the validation split (never test) and adopts it only
within ``deployment.max_quantized_accuracy_drop``. It then times every
runtime (``benchmark.json``) and writes a self-contained ``bundle/`` that
``mlestar serve`` loads (checksums verified): models, labels, preprocessing,
model card, metadata with the serving defaults, the app's ``openapi.json``,
Prometheus ``alerts.yml``, the training statistics drift is measured against
(``reference.json``, from stage 1), and a serving recipe that needs no mlestar
source tree: ``requirements.txt`` (mlestar as a wheel in ``wheels/``, the
serving packages pinned) and a ``Dockerfile`` that runs ``mlestar serve``.
When refinement adopted a new model, its test metrics are computed here,
once, for the model card. Every exported model divides its logits by the
temperature fitted on validation for the served model (stage 5's for stage 4's
model, refitted here for an adopted one), so served probabilities are calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mlestar.stages.common import DATASET_REF, Steps, checked_dataset
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

if TYPE_CHECKING:  # imported lazily at run time: the stage registry must not pay for torch and onnx
    from mlestar.config.schema import MlestarConfig
    from mlestar.deploy.export import ParityReport
    from mlestar.deploy.extras import AlertThresholds
    from mlestar.deploy.quantize import QuantizationReport

ANALYSIS_REF = "situation_analysis/analysis.json"
MODEL_REF = "refinement/model.pt"
REFINEMENT_REF = "refinement/refinement.json"
EVAL_REF = "evaluation/metrics.json"
PROBE_IMAGES = 64  # validation images used for parity, tracing and benchmarks
DEFAULT_ALERT_LATENCY_S = 0.25  # /predict p95 alert when neither the alerts nor the constraints set one
BUNDLE_EXTRAS = ("openapi.json", "benchmark.json", "alerts.yml", "requirements.txt", "reference.json", "example.png",
                 "Dockerfile")
EXAMPLE_FILE = "example.png"  # a test image, the model card's curl example sends it


def deployed_test_metrics(ctx: StageContext, model: Any, adopted: bool,
                          temperature: float = 1.0) -> tuple[dict[str, Any], str]:
    """Test metrics of the model being deployed, and where they come from.

    ``temperature`` is the served model's (:func:`served_calibration`): an adopted
    model's ``ece`` is measured on the probabilities the bundle serves.
    """
    evaluated = ctx.read_json(EVAL_REF)
    if not adopted:
        return evaluated["summary"], "stage 5 (same model)"
    from mlestar.evaluation.holdout import evaluate_on_test

    dataset, prep = checked_dataset(ctx)
    metrics, _, _ = evaluate_on_test(model, dataset, prep, temperature=temperature,
                                     progress=lambda done, total: ctx.progress("deployment: test pass (images)",
                                                                               done, total))
    return ({"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"]},
            "refined model, evaluated once on test at deployment")


def served_calibration(evaluated: dict[str, Any], model: Any, adopted: bool, val_images: Any,
                       val_labels: np.ndarray) -> dict[str, Any]:
    """The temperature of the model being served, and where it comes from.

    Stage 5's, fitted on validation for the same model, when refinement kept
    stage 4's model; refitted here on validation when refinement adopted
    another model (stage 5's T belongs to a model that is not served). Never
    fitted on test.
    """
    from mlestar.evaluation.calibration import fit_on_validation

    stage5 = evaluated.get("calibration")
    if not adopted and stage5 is not None:
        return {**stage5, "source": "stage 5 (same model, validation split)"}
    return {**fit_on_validation(model, val_images, val_labels),
            "source": "refitted at deployment on the validation split for the adopted model"}


def serving_runtime(config_runtime: str | None, exported: list[str], int8_runtime: str | None) -> str:
    """The runtime ``mlestar serve`` uses by default.

    The configured one; else the runtime of an adopted int8 model (quantizing
    was asked for and passed, so that model is the one to serve); else
    torchscript when exported, else onnx.
    """
    if config_runtime:
        return config_runtime
    if int8_runtime:
        return int8_runtime
    return "torchscript" if "torchscript" in exported else exported[0]


def variant_name(runtime: str, precision: str) -> str:
    """Key of one benchmarked model: ``"onnx"`` (fp32) or ``"onnx-int8"``."""
    return runtime if precision == "fp32" else f"{runtime}-{precision}"


@dataclass
class Prepared:
    """What exporting, quantizing and benchmarking produced, before the bundle is written.

    Attributes:
        reports: export format -> its passing parity report.
        files: export format -> fp32 file in ``exports/``.
        quant: the int8 report (adopted or not); None without ``deployment.quantize``.
        quantized_files: runtime -> the adopted int8 file (empty when none was adopted).
        runtime, precision: what ``mlestar serve`` runs by default.
        benchmark: variant (:func:`variant_name`) -> :func:`~mlestar.deploy.benchmark.benchmark_runner` result.
        calibration: the served model's temperature and where it comes from (:func:`served_calibration`);
            every exported file already divides its logits by it.
    """

    reports: dict[str, ParityReport]
    files: dict[str, Path]
    quant: QuantizationReport | None
    quantized_files: dict[str, Path]
    runtime: str
    precision: str
    benchmark: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # served_calibration(): temperature, source

    @property
    def served(self) -> str:
        """The benchmark key of the model served by default."""
        return variant_name(self.runtime, self.precision)


@register_stage
class Deployment(Stage):
    """Stage 7: export, parity, quantization, benchmark, bundle."""

    name = "deployment"
    title = "Deployment preparation"
    config_paths = ("deployment", "task", "evaluation.runtime", "constraints.max_inference_latency", "project.name",
                    "project.description")
    inputs = (DATASET_REF, ANALYSIS_REF, MODEL_REF, REFINEMENT_REF, EVAL_REF)
    ships_package = True  # the bundle's wheel is all of mlestar: an edit anywhere rebuilds it
    outputs = ("deployment.json", "bundle/manifest.json", "bundle/model_card.md",
               *(f"bundle/{name}" for name in BUNDLE_EXTRAS))
    reads_test = True

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.evaluation.calibration import TemperatureScaled
        from mlestar.training import load_model_file

        steps = Steps(ctx, "deployment: export and parity, benchmark, test pass, bundle", 4)
        model, payload = load_model_file(ctx.input(MODEL_REF))
        dataset, prep = checked_dataset(ctx)
        val_images, val_labels = _validation(dataset, prep)
        probe = val_images[:PROBE_IMAGES]
        adopted = bool(ctx.read_json(REFINEMENT_REF)["adopted"])
        scorer = _scorer(ctx, model, val_images) if adopted else model
        calibration = served_calibration(ctx.read_json(EVAL_REF), scorer, adopted, val_images, val_labels)
        # The exported model divides its logits by T, so every runtime serves calibrated probabilities.
        served = TemperatureScaled(model, calibration["temperature"])
        prepared = _export_and_quantize(ctx, served, probe, val_images, val_labels)
        prepared.calibration = calibration
        steps.advance()
        prepared.benchmark = _benchmark(prepared, ctx.out_dir / "exports", probe.numpy(),
                                        lambda done, total: ctx.progress("deployment benchmark", done, total))
        steps.advance()
        test_metrics, test_source = deployed_test_metrics(ctx, scorer, adopted, calibration["temperature"])
        steps.advance()
        bundle_dir = _write_bundle(ctx, prepared, payload, prep, (test_metrics, test_source), dataset)
        steps.finish()
        size = float(sum(p.stat().st_size for p in bundle_dir.rglob("*") if p.is_file()))
        atomic_write_json(ctx.out_dir / "deployment.json",
                          _record(prepared, bundle_dir, size, test_metrics, test_source))
        return StageResult(metrics=_metrics(prepared, size), summary=_summary(prepared, size, bundle_dir))


# --------------------------------------------------------------------------- exporting


def _scorer(ctx: StageContext, model: Any, val_images: Any) -> Any:
    """What computes an adopted model's validation and test logits: the runtime stage 5 would choose."""
    from mlestar.deploy.eval_runtime import evaluation_forward

    return evaluation_forward(model, val_images, choice=ctx.config.evaluation.runtime).module


def _validation(dataset: Any, prep: Any) -> tuple[Any, np.ndarray]:
    """Normalized validation images (CPU tensor) and labels: parity probes and the int8 decision."""
    import torch

    from mlestar.training import split_to_tensors

    images, labels = split_to_tensors(dataset.val, prep, torch.device("cpu"))
    return images, labels.numpy()


def _export_and_quantize(ctx: StageContext, model: Any, probe: Any, val_images: Any,
                         val_labels: np.ndarray) -> Prepared:
    """Exports with parity, the optional int8 copy, and which model the bundle serves by default."""
    from mlestar.deploy.export import EXPORT_FILES, export_all

    cfg = ctx.config.deployment
    exports = ctx.out_dir / "exports"
    reports = export_all(model, probe, exports, list(cfg.formats), cfg.parity_tolerance, cfg.min_top1_agreement)
    files = {fmt: exports / EXPORT_FILES[fmt] for fmt in reports}
    quant = _quantize(ctx, model, probe, files, val_images.numpy(), val_labels) if cfg.quantize != "none" else None
    adopted = quant if quant is not None and quant.adopted else None
    runtime = serving_runtime(cfg.serve.runtime, list(files), adopted.runtime if adopted else None)
    precision = "int8" if adopted and adopted.runtime == runtime else "fp32"
    quantized_files = {adopted.runtime: exports / adopted.file} if adopted else {}
    return Prepared(reports, files, quant, quantized_files, runtime, precision)


def _quantize(ctx: StageContext, model: Any, probe: Any, files: dict[str, Path], images: np.ndarray,
              labels: np.ndarray) -> QuantizationReport:
    """The int8 copy and its validation-accuracy verdict, recorded in the audit trail."""
    from mlestar.deploy.quantize import METHOD_RUNTIME, quantize_and_compare

    cfg = ctx.config.deployment
    fp32_file = files[METHOD_RUNTIME[cfg.quantize]]
    quant = quantize_and_compare(cfg.quantize, model, probe, fp32_file, fp32_file.parent, images, labels,
                                 cfg.max_quantized_accuracy_drop)
    ctx.decide("int8 model", "adopted" if quant.adopted else "rejected",
               f"validation accuracy {quant.fp32_accuracy:.4f} -> {quant.int8_accuracy:.4f} "
               f"(drop {quant.accuracy_drop:+.4f}, allowed {quant.max_accuracy_drop:.4f})", method=quant.method)
    return quant


def _benchmark(prepared: Prepared, exports: Path, probe: np.ndarray,
               progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, Any]:
    """Latency and throughput of every fp32 export and of the int8 copy, adopted or not; one ``progress`` each."""
    from mlestar.deploy.benchmark import benchmark_runner
    from mlestar.deploy.export import load_onnx_runner, load_torchscript_runner

    loaders = {"torchscript": load_torchscript_runner, "onnx": load_onnx_runner}
    models = {variant_name(fmt, "fp32"): (fmt, path) for fmt, path in prepared.files.items()}
    if prepared.quant is not None:
        models[variant_name(prepared.quant.runtime, "int8")] = (prepared.quant.runtime, exports / prepared.quant.file)
    results = {}
    for name, (runtime, path) in models.items():
        results[name] = benchmark_runner(loaders[runtime](path), probe)
        progress(len(results), len(models))
    return results


# --------------------------------------------------------------------------- the bundle


def _write_bundle(ctx: StageContext, prepared: Prepared, payload: dict[str, Any], prep: Any,
                  tested: tuple[dict[str, Any], str], dataset: Any) -> Path:
    """The bundle folder; ``tested`` is the test metrics and where they come from."""
    from mlestar.deploy.bundle import write_bundle
    from mlestar.deploy.extras import serving_pins
    from mlestar.tracking.container import serving_recipe

    arch = payload["architecture"]
    test_metrics, test_source = tested
    serving = {**ctx.config.deployment.serve.model_dump(mode="json"), "runtime": prepared.runtime}
    quant = prepared.quant
    metadata = {"run_id": ctx.run_id, "model_name": arch["name"], "version": f"{ctx.run_id}",
                "metrics": test_metrics, "architecture": arch, "serving": serving,
                "quantization": quant.to_dict() if quant else {"method": "none"},
                "calibration": _calibration_metadata(prepared.calibration)}
    example, png = _example(prepared, payload["class_names"], prep, metadata, dataset)
    recipe = serving_recipe(serving_pins(list(prepared.files)), port=int(serving["port"]),
                            project=ctx.config.project.name, run_id=ctx.run_id)
    card = _model_card(ctx, prepared, arch, prep, test_metrics, test_source, example, recipe.card)
    extras = {**_extras(ctx, prepared, arch["name"], serving), EXAMPLE_FILE: png,
              "requirements.txt": recipe.requirements, "Dockerfile": recipe.dockerfile}
    return write_bundle(ctx.out_dir / "bundle", model_files=prepared.files, class_names=payload["class_names"],
                        preprocessing=prep, metadata=metadata, model_card=card,
                        quantized_files=prepared.quantized_files, extra_files=extras, wheel=recipe.wheel)


def _calibration_metadata(calibration: dict[str, Any]) -> dict[str, Any]:
    """``metadata.json``'s ``calibration``: T, where it was fitted, and that the model files apply it."""
    return {"method": "temperature scaling", "temperature": calibration["temperature"],
            "source": calibration["source"], "applied_in": "model files (logits / temperature)"}


def _example(prepared: Prepared, class_names: list[str], prep: Any, metadata: dict[str, Any],
             dataset: Any) -> tuple[Any, bytes]:
    """The model card's example: the first test image as PNG, and what the served model answers for it.

    The answer comes from the bundle's own predict path on the model file the bundle serves by
    default, from the PNG's bytes decoded again, as ``POST /predict`` would receive them.
    """
    import io

    from PIL import Image

    from mlestar.deploy.bundle import CardExample, example_response, preview_bundle

    pixels = dataset.test.images[0]
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    served = prepared.quantized_files.get(prepared.runtime) if prepared.precision == "int8" else None
    bundle = preview_bundle(served or prepared.files[prepared.runtime], prepared.runtime, class_names, prep, metadata)
    response = example_response(bundle, Image.open(io.BytesIO(buffer.getvalue())), metadata["serving"]["top_k"])
    true_label = class_names[int(dataset.test.labels[0])]
    return CardExample(EXAMPLE_FILE, true_label, response), buffer.getvalue()


def _extras(ctx: StageContext, prepared: Prepared, model_name: str, serving: dict[str, Any]) -> dict[str, Any]:
    """The bundle's operational files (:data:`BUNDLE_EXTRAS` but the serving recipe and the example)."""
    from mlestar.deploy.extras import render_alerts
    from mlestar.deploy.monitor import reference_from_analysis
    from mlestar.deploy.serve import ServeSettings, openapi_document

    reference = {**reference_from_analysis(ctx.read_json(ANALYSIS_REF)).to_dict(),
                 "source": "stage 1 analysis.json: training split statistics (pixels on the 0..1 scale)"}
    return {"openapi.json": openapi_document(model_name, ctx.run_id, ServeSettings.from_serving(serving)),
            "benchmark.json": _benchmark_file(prepared),
            "alerts.yml": render_alerts(model_name, ctx.run_id, alert_thresholds(ctx.config)),
            "reference.json": reference}


def _benchmark_file(prepared: Prepared) -> dict[str, Any]:
    """``benchmark.json``: the models in the bundle (an int8 copy only when adopted) and the machine."""
    from mlestar.deploy.benchmark import machine

    in_bundle = {variant_name(fmt, "fp32") for fmt in prepared.files}
    in_bundle |= {variant_name(runtime, "int8") for runtime in prepared.quantized_files}
    return {"measured": "stage 7, in-process (no HTTP): batch-1 latency, throughput at batch 32 and 64",
            "machine": machine(), "default": prepared.served,
            "runtimes": {name: result for name, result in prepared.benchmark.items() if name in in_bundle}}


def alert_thresholds(config: MlestarConfig) -> AlertThresholds:
    """Thresholds of ``alerts.yml``, from ``deployment.alerts``.

    The latency threshold falls back to ``constraints.max_inference_latency``
    (the config's latency constraint), then to :data:`DEFAULT_ALERT_LATENCY_S`.
    """
    from mlestar.deploy.extras import AlertThresholds

    alerts = config.deployment.alerts
    latency = alerts.max_latency_p95 or config.constraints.max_inference_latency or DEFAULT_ALERT_LATENCY_S
    return AlertThresholds(drift_score=alerts.max_drift_score, latency_p95_s=latency,
                           error_rate=alerts.max_error_rate, window_s=alerts.window)


def _model_card(ctx: StageContext, prepared: Prepared, arch: dict[str, Any], prep: Any,
                test_metrics: dict[str, Any], test_source: str, example: Any, container: str) -> str:
    from mlestar.deploy.benchmark import best_throughput
    from mlestar.deploy.bundle import render_model_card

    served = prepared.benchmark[prepared.served]
    from mlestar.tracking.environment import capture_environment

    env = capture_environment()  # where this bundle was built (a cached copy keeps its own builder's)
    return render_model_card(
        project=ctx.config.project.name, run_id=ctx.run_id, model_name=arch["name"],
        dataset=ctx.read_json(DATASET_REF)["name"],
        metrics={**test_metrics, "deploy_latency_p95": served["latency_s"]["p95"],
                 "deploy_throughput": best_throughput(served)},
        targets=dict(ctx.config.task.targets), preprocessing=prep, environment=_env_summary(env),
        limits=[f"test metrics: {test_source}",
                f"served by default with {prepared.runtime} ({prepared.precision}); {_quant_line(prepared)}",
                _calibration_line(prepared.calibration),
                f"trained on {arch['image_size']}px images with {arch['in_channels']} channel(s); "
                "other inputs are resized and converted",
                "drift from the training data is scored on /metrics and /health (alerts.yml); "
                "not evaluated under distribution shift"], example=example, container=container)


def _calibration_line(calibration: dict[str, Any]) -> str:
    """The model card's line on calibration: T, where it comes from, and that the probabilities use it."""
    return (f"probabilities are calibrated by temperature scaling: every model file divides its logits by "
            f"T = {calibration['temperature']:.4f}, from {calibration['source']}; predicted classes are unchanged")


def _quant_line(prepared: Prepared) -> str:
    quant = prepared.quant
    if quant is None:
        return "no int8 model (deployment.quantize: none)"
    verdict = "adopted" if quant.adopted else "not adopted"
    return (f"int8 ({quant.method}) {verdict}: validation accuracy {quant.fp32_accuracy:.4f} -> "
            f"{quant.int8_accuracy:.4f}, allowed drop {quant.max_accuracy_drop:.4f}")


# --------------------------------------------------------------------------- reporting


def _record(prepared: Prepared, bundle_dir: Path, size: float, test_metrics: dict[str, Any],
            test_source: str) -> dict[str, Any]:
    quant = prepared.quant
    return {"parity": {fmt: r.__dict__ for fmt, r in prepared.reports.items()},
            "quantization": quant.to_dict() if quant else {"method": "none"},
            "benchmark": prepared.benchmark,
            "served": {"runtime": prepared.runtime, "precision": prepared.precision, "variant": prepared.served},
            "calibration": prepared.calibration,
            "latency_s": prepared.benchmark[prepared.served]["latency_s"], "bundle": "bundle",
            "bundle_size_bytes": size, "test_metrics": test_metrics, "test_metrics_source": test_source,
            "serve": f"mlestar serve {bundle_dir}"}


def _metrics(prepared: Prepared, size: float) -> dict[str, float | None]:
    from mlestar.deploy.benchmark import best_throughput

    reports, quant = prepared.reports, prepared.quant
    served = prepared.benchmark[prepared.served]
    diffs = {fmt: reports[fmt].max_abs_diff if fmt in reports else None for fmt in ("onnx", "torchscript")}
    return {"onnx_max_abs_diff": diffs["onnx"], "torchscript_max_abs_diff": diffs["torchscript"],
            "parity_top1_agreement": min(r.top1_agreement for r in reports.values()),
            "deploy_latency_p95": served["latency_s"]["p95"], "deploy_throughput": best_throughput(served),
            "bundle_size": size, "quantized_accuracy_drop": quant.accuracy_drop if quant else None}


def _summary(prepared: Prepared, size: float, bundle_dir: Path) -> str:
    parity = ", ".join(f"{f} {r.max_abs_diff:.1e}" for f, r in prepared.reports.items())
    return (f"exported {', '.join(prepared.reports)}; parity {parity}; {_quant_line(prepared)}; serving "
            f"{prepared.runtime} ({prepared.precision}); bundle {size / 1e6:.2f} MB at {bundle_dir}")


def _env_summary(env: dict[str, Any]) -> dict[str, Any]:
    return {"python": env.get("python"), "torch": env.get("packages", {}).get("torch"),
            "cpu": env.get("cpu", {}).get("model"), "gpu": (env.get("gpu") or {}).get("name"),
            "git_commit": env.get("git_commit")}
