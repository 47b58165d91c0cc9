"""The inference bundle: one folder that holds everything needed to serve a model.

Layout::

    model.ts            TorchScript (when exported)
    model.onnx          ONNX (when exported)
    model.int8.ts       int8 TorchScript (when quantized and adopted)
    model.int8.onnx     int8 ONNX (when quantized and adopted)
    labels.json         class index -> name
    preprocessing.json  Preprocessing.to_dict(): size, channels, mean, std
    metadata.json       run id, model name, version, metrics, created, formats,
                        serving defaults, quantization
    model_card.md       human-readable summary
    <extra files>       stage 7 adds openapi.json, benchmark.json, alerts.yml,
                        requirements.txt, Dockerfile, example.png and
                        reference.json (drift reference)
    wheels/<wheel>      mlestar itself, installed by requirements.txt (when given)
    manifest.json       relative path -> {sha256, size}; written last

The manifest is written last and removed first when a bundle is rewritten,
so a folder without one is an unfinished bundle. :func:`load_bundle` checks
every checksum before it trusts any file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

import numpy as np
from PIL import Image

from mlestar.config.catalog import METRICS, suggest
from mlestar.data.dataset import Preprocessing
from mlestar.data.preprocess import preprocess_image
from mlestar.deploy.export import EXPORT_FILES, Runner, load_onnx_runner, load_torchscript_runner
from mlestar.deploy.monitor import DriftReference
from mlestar.deploy.quantize import QUANTIZED_FILES
from mlestar.errors import BundleError, ExportError
from mlestar.tracking.container import WHEELS_DIR
from mlestar.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, copy_file, read_json
from mlestar.tracking.manifest import MANIFEST, manifest_of, verify_entry

LABELS = "labels.json"
PREPROCESSING = "preprocessing.json"
METADATA = "metadata.json"
MODEL_CARD = "model_card.md"
REFERENCE = "reference.json"
PRECISIONS = ("auto", "fp32", "int8")

_REQUIRED_FILES = (LABELS, PREPROCESSING, METADATA)
_REQUIRED_METADATA = ("run_id", "model_name", "version")
_REEXPORT_HINT = "re-export with `mlestar run --from deployment`"
_RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "torchscript": load_torchscript_runner,
    "onnx": load_onnx_runner,
}


# --------------------------------------------------------------------------- writing


def write_bundle(out_dir: Path, *, model_files: dict[str, Path], class_names: list[str],
                 preprocessing: Preprocessing, metadata: dict[str, Any], model_card: str,
                 quantized_files: dict[str, Path] | None = None,
                 extra_files: Mapping[str, Any] | None = None, wheel: Path | None = None) -> Path:
    """Write a complete bundle into ``out_dir`` and return ``out_dir``.

    Args:
        model_files: export format ("torchscript", "onnx") -> exported file;
            each is copied in under its :data:`EXPORT_FILES` name.
        metadata: must hold ``run_id``, ``model_name`` and ``version``;
            ``metrics`` defaults to ``{}``, ``created`` to now (UTC),
            ``formats`` to the keys of ``model_files``.
        quantized_files: runtime -> adopted int8 copy, copied in under its
            :data:`~mlestar.deploy.quantize.QUANTIZED_FILES` name; the runtime
            must also be in ``model_files`` (the fp32 file stays the reference).
        extra_files: file name -> content, written next to the rest and
            checksummed like it: ``dict``/``list`` as JSON, ``str`` as text,
            ``bytes`` as is. Names are plain file names other than the ones above.
        wheel: a wheel file (mlestar's, :mod:`mlestar.tracking.wheel`) copied to
            ``wheels/<its name>`` and checksummed; a wheel of an earlier bundle
            in the folder is deleted.

    Raises:
        BundleError: on no or unknown model formats, a missing model file,
            no class names, metadata without a required key, an int8 copy
            without its fp32 model, or an extra file name that is not allowed.
    """
    out_dir = Path(out_dir)
    quantized_files, extra_files = dict(quantized_files or {}), dict(extra_files or {})
    _check_write_inputs(model_files, class_names, metadata)
    _check_additions(model_files, quantized_files, extra_files)
    # Until the new manifest exists the folder must not pass for a finished bundle.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    names = _copy_model_files(out_dir, model_files, EXPORT_FILES)
    names += _copy_model_files(out_dir, quantized_files, QUANTIZED_FILES)
    atomic_write_json(out_dir / LABELS, list(class_names))
    atomic_write_json(out_dir / PREPROCESSING, preprocessing.to_dict())
    atomic_write_json(out_dir / METADATA, _complete_metadata(metadata, model_files))
    atomic_write_text(out_dir / MODEL_CARD, model_card)
    for name, content in extra_files.items():
        _write_extra(out_dir / name, content)
    listed = [*names, *_REQUIRED_FILES, MODEL_CARD, *extra_files, *_copy_wheel(out_dir, wheel)]
    atomic_write_json(out_dir / MANIFEST, _manifest(out_dir, listed))
    return out_dir


def _check_write_inputs(model_files: dict[str, Path], class_names: list[str], metadata: dict[str, Any]) -> None:
    if not model_files:
        raise BundleError("a bundle needs at least one model file, got none",
                          hint=f"pass model_files={{format: path}} with a format from {list(EXPORT_FILES)}")
    for fmt, path in model_files.items():
        if fmt not in EXPORT_FILES:
            raise BundleError(f"unknown model format {fmt!r} in model_files{suggest(fmt, list(EXPORT_FILES))}",
                              hint=f"model_files keys are export formats: {', '.join(EXPORT_FILES)}")
        if not Path(path).is_file():
            raise BundleError(f"{fmt} model file {path} does not exist", hint="run the export first")
    if not class_names:
        raise BundleError("a bundle needs class names, got an empty list", hint="pass the dataset's class_names")
    missing = [key for key in _REQUIRED_METADATA if key not in metadata]
    if missing:
        raise BundleError(f"bundle metadata lacks {', '.join(missing)}",
                          hint=f"metadata must hold {', '.join(_REQUIRED_METADATA)}")


def _check_additions(model_files: dict[str, Path], quantized_files: dict[str, Path],
                     extra_files: dict[str, Any]) -> None:
    for runtime, path in quantized_files.items():
        if runtime not in model_files:
            raise BundleError(f"int8 {runtime} model given without the fp32 {runtime} model",
                              hint=f"add {runtime!r} to model_files, or drop it from quantized_files")
        if not Path(path).is_file():
            raise BundleError(f"int8 {runtime} model file {path} does not exist", hint="run the quantization first")
    reserved = {*EXPORT_FILES.values(), *QUANTIZED_FILES.values(), *_REQUIRED_FILES, MODEL_CARD, MANIFEST, WHEELS_DIR}
    for name in extra_files:
        if name in reserved or PurePosixPath(name).name != name or name.startswith("."):
            raise BundleError(f"extra bundle file name {name!r} is reserved or not a plain file name",
                              hint="name extra files like 'notes.json', outside the bundle's own file names")


def _copy_model_files(out_dir: Path, model_files: dict[str, Path], file_names: dict[str, str]) -> list[str]:
    """Copy each model in under its bundle name; delete models of runtimes not written now."""
    for runtime, name in file_names.items():
        if runtime not in model_files:
            (out_dir / name).unlink(missing_ok=True)  # a stale model from an earlier bundle
    for runtime, path in model_files.items():
        atomic_write_bytes(out_dir / file_names[runtime], Path(path).read_bytes())
    return [file_names[runtime] for runtime in model_files]


def _copy_wheel(out_dir: Path, wheel: Path | None) -> list[str]:
    """Copy ``wheel`` into ``wheels/`` (emptied first) and return its bundle name; ``[]`` without one."""
    shutil.rmtree(out_dir / WHEELS_DIR, ignore_errors=True)  # an earlier bundle's wheel
    if wheel is None:
        return []
    name = f"{WHEELS_DIR}/{Path(wheel).name}"
    copy_file(Path(wheel), out_dir / name)
    return [name]


def _write_extra(path: Path, content: Any) -> None:
    if isinstance(content, bytes):
        atomic_write_bytes(path, content)
    elif isinstance(content, str):
        atomic_write_text(path, content)
    else:
        atomic_write_json(path, content)


def _complete_metadata(metadata: dict[str, Any], model_files: dict[str, Path]) -> dict[str, Any]:
    defaults = {
        "metrics": {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "formats": sorted(model_files),
    }
    return {**defaults, **metadata}


def _manifest(bundle_dir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return manifest_of(bundle_dir, names)


# --------------------------------------------------------------------------- model card


@dataclass(frozen=True)
class CardExample:
    """A real request and the answer the bundle gave it, for the model card.

    Attributes:
        file: the image's file name in the bundle (``example.png``).
        true_label: the class the test split says the image is.
        response: the ``/predict`` JSON body the bundle's predict path returned for it.
    """

    file: str
    true_label: str
    response: dict[str, Any]


def example_response(bundle: LoadedBundle, image: Image.Image, top_k: int) -> dict[str, Any]:
    """The body ``POST /predict`` answers for ``image``: the server's own answer (``describe``) and version."""
    return {**bundle.predict([image], top_k)[0], "model_version": bundle.version}


def render_model_card(*, project: str, run_id: str, model_name: str, dataset: str, metrics: dict[str, float],
                      targets: dict[str, float], preprocessing: Preprocessing, environment: dict[str, Any],
                      limits: list[str], example: CardExample | None = None, container: str | None = None) -> str:
    """Render the bundle's ``model_card.md``.

    Sections: intended use, data and preprocessing, an example request with the
    response it really got (when ``example`` is given), how to run it in a container
    (``container``: :func:`mlestar.tracking.container.card_section`, when given), metrics
    against targets (a target is met per the metric's direction in the metric catalog),
    known limits, training environment and the run id that reproduces it.
    """
    sections = [
        f"# {project}: {model_name}\n\nProduced by mlestar run `{run_id}`.",
        _card_intended_use(preprocessing),
        _card_data(dataset, preprocessing),
        *([_card_example(example)] if example is not None else []),
        *([container] if container is not None else []),
        "## Metrics\n\n" + _metrics_table(metrics, targets),
        "## Limits\n\n" + ("\n".join(f"- {item}" for item in limits) if limits else "None recorded."),
        "## Training environment\n\n" + _key_value_table(environment),
        f"## Reproduce\n\nRun id: `{run_id}`. Re-export this bundle from the run with "
        "`mlestar run --from deployment`.",
    ]
    return "\n\n".join(sections) + "\n"


def _card_intended_use(prep: Preprocessing) -> str:
    kind = "grayscale" if prep.channels == 1 else "colour"
    return ("## Intended use\n\n"
            f"Classifies one {kind} image into one of the classes in `labels.json`. Send PNG or JPEG "
            f"images; they are converted and resized to {prep.image_size}x{prep.image_size}. "
            "It is not meant for images unlike the training data described below.")


def _card_data(dataset: str, prep: Preprocessing) -> str:
    mean = ", ".join(f"{v:.4f}" for v in prep.mean)
    std = ", ".join(f"{v:.4f}" for v in prep.std)
    return ("## Data\n\n"
            f"Trained and evaluated on `{dataset}`.\n\n"
            "Preprocessing (the same code in training and serving, `mlestar.data.preprocess`): EXIF "
            "orientation applied; 16-bit images keep their top byte (value >> 8); alpha dropped, not "
            f"composited; {'grayscale' if prep.channels == 1 else 'RGB'}, bilinear resize to "
            f"{prep.image_size}x{prep.image_size}, pixels / 255, then (x - mean) / std with "
            f"mean ({mean}) and std ({std}).")


def _card_example(example: CardExample) -> str:
    return ("## Example request\n\n"
            f"`{example.file}` in this bundle is an image of the test split (true class: "
            f"`{example.true_label}`). With the bundle served (`mlestar serve .`, or the Dockerfile):\n\n"
            f"```bash\ncurl -s -X POST -F \"file=@{example.file}\" http://127.0.0.1:8000/predict\n```\n\n"
            "answers, as the bundle answered it when it was written:\n\n"
            f"```json\n{json.dumps(example.response, indent=2)}\n```")


def _metrics_table(metrics: dict[str, float], targets: dict[str, float]) -> str:
    rows = ["| metric | value | target | met |", "| --- | --- | --- | --- |"]
    for name in sorted(set(metrics) | set(targets)):
        value, target = metrics.get(name), targets.get(name)
        shown_value = _format_metric(name, value) if value is not None else "not measured"
        shown_target = _format_metric(name, target) if target is not None else "-"
        rows.append(f"| {_cell(name)} | {shown_value} | {shown_target} | {_target_met(name, value, target)} |")
    return "\n".join(rows) if len(rows) > 2 else "No metrics recorded."


def _target_met(name: str, value: float | None, target: float | None) -> str:
    if target is None:
        return "-"
    if value is None:
        return "no"
    spec = METRICS.get(name)
    if spec is None:
        return "?"  # direction unknown: do not guess
    if not isinstance(value, (int, float)):
        return "?"
    met = value >= target if spec.higher_is_better else value <= target
    return "yes" if met else "no"


def _format_metric(name: str, value: Any) -> str:
    """Show a value in the unit people read it in (ms, MiB, plain counts); non-numbers as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _cell(value)
    unit = METRICS[name].unit if name in METRICS else "number"
    if unit == "seconds":
        return f"{value * 1000:.2f} ms"
    if unit == "bytes":
        return f"{value / 2**20:.2f} MiB"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.4f}" if unit == "fraction" else f"{value:.4g}"


def _key_value_table(values: dict[str, Any]) -> str:
    if not values:
        return "Not recorded."
    rows = ["| key | value |", "| --- | --- |"]
    rows += [f"| {_cell(key)} | {_cell(values[key])} |" for key in sorted(values)]
    return "\n".join(rows)


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


# --------------------------------------------------------------------------- verifying


def verify_bundle(bundle_dir: Path) -> dict[str, dict[str, Any]]:
    """Recompute every checksum in the manifest; return the manifest.

    Files in the folder but not in the manifest are ignored (and never loaded).

    Raises:
        BundleError: naming the first file (in sorted order) that is missing,
            has another size or checksum, or when the manifest itself is
            missing, malformed, or lacks a required file.
    """
    bundle_dir = Path(bundle_dir)
    manifest = _read_manifest(bundle_dir)
    for name in sorted(manifest):
        _verify_entry(bundle_dir, name, manifest[name])
    return manifest


def _read_manifest(bundle_dir: Path) -> dict[str, dict[str, Any]]:
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"bundle {bundle_dir} has no {MANIFEST}: it is not a bundle or was not finished",
                          hint=_REEXPORT_HINT)
    try:
        manifest = read_json(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}", hint=_REEXPORT_HINT) from exc
    if not isinstance(manifest, dict) or not all(isinstance(v, dict) for v in manifest.values()):
        raise BundleError(f"{path} is not a mapping of file -> {{sha256, size}}", hint=_REEXPORT_HINT)
    missing = [name for name in _REQUIRED_FILES if name not in manifest]
    if missing or not any(name in manifest for name in EXPORT_FILES.values()):
        raise BundleError(f"{path} lists no {', '.join(missing) or 'model file'}", hint=_REEXPORT_HINT)
    return manifest


def _verify_entry(bundle_dir: Path, name: str, entry: dict[str, Any]) -> None:
    verify_entry(bundle_dir, name, entry, _REEXPORT_HINT)


# --------------------------------------------------------------------------- loading


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # no overflow for large logits
    exp = np.exp(shifted.astype(np.float64))
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class LoadedBundle:
    """A verified bundle, ready to predict.

    Attributes:
        path: the bundle folder.
        runtime: "torchscript" or "onnx": which model file ``runner`` runs.
        class_names: label index -> name.
        preprocessing: the size, channels, mean and std that
            :mod:`mlestar.data.preprocess` turns images into model input with.
        metadata: ``metadata.json`` (run_id, model_name, version, metrics, serving, ...).
        runner: float32 ``(N, C, H, W)`` -> ``(N, num_classes)`` logits.
        manifest: the verified manifest.
        precision: "fp32" or "int8": which copy of the runtime's model ``runner`` runs.
        reference: the training statistics for drift monitoring, when the bundle has them.
    """

    path: Path
    runtime: str
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    metadata: dict[str, Any]
    runner: Runner
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)
    precision: str = "fp32"
    reference: DriftReference | None = None

    @property
    def model_name(self) -> str:
        return str(self.metadata["model_name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    def predict(self, images: list[Image.Image], top_k: int = 5) -> list[dict[str, Any]]:
        """Classify decoded ``images``; one dict per image, in order (see :meth:`describe`).

        Each image goes through :func:`mlestar.data.preprocess.preprocess_image`,
        the preprocessing the model was trained with.
        """
        if not images:
            return []
        batch = np.stack([preprocess_image(image, self.preprocessing) for image in images])
        return self.describe(np.asarray(self.runner(batch)), top_k)

    def describe(self, logits: np.ndarray, top_k: int = 5) -> list[dict[str, Any]]:
        """Turn ``(N, num_classes)`` logits into one answer dict per row.

        Each dict holds ``label``, ``index``, ``confidence`` (its probability),
        ``probabilities`` (class name -> probability, summing to 1) and
        ``top_k`` (up to ``top_k`` ``{label, index, probability}``, best first).
        """
        return [self._describe(row, top_k) for row in _softmax(np.asarray(logits))]

    def _describe(self, row: np.ndarray, top_k: int) -> dict[str, Any]:
        order = np.argsort(-row, kind="stable")
        best = int(order[0])
        ranked = [{"label": self.class_names[i], "index": int(i), "probability": float(row[i])}
                  for i in order[:top_k]]
        return {
            "label": self.class_names[best],
            "index": best,
            "confidence": float(row[best]),
            "probabilities": {name: float(p) for name, p in zip(self.class_names, row)},
            "top_k": ranked,
        }


def preview_bundle(model_file: Path, runtime: str, class_names: list[str], preprocessing: Preprocessing,
                   metadata: dict[str, Any]) -> LoadedBundle:
    """A bundle over ``model_file`` before the bundle folder is written (stage 7's model card example).

    Predicts exactly as :func:`load_bundle` would on the copy of ``model_file`` the bundle will hold.
    """
    try:
        runner = _RUNNERS[runtime](Path(model_file))
    except ExportError as exc:
        raise BundleError(exc.message, hint=_REEXPORT_HINT) from exc
    return LoadedBundle(Path(model_file).parent, runtime, tuple(class_names), preprocessing, metadata, runner)


def load_bundle(bundle_dir: Path, runtime: str | None = None, precision: str = "auto") -> LoadedBundle:
    """Verify a bundle's checksums, then load it for ``runtime``.

    Args:
        runtime: "torchscript" or "onnx"; ``None``: the bundle's default
            (``metadata.serving.runtime``, else torchscript when present, else onnx).
        precision: "auto" loads the int8 copy when the bundle adopted one for
            ``runtime`` and fp32 otherwise; "fp32" or "int8" insist.

    One blank image is run through the model on load, so a model whose output
    width does not match ``labels.json`` is refused here, not at the first request.

    Raises:
        BundleError: on any checksum mismatch, an unknown runtime or precision,
            one the bundle has no model for, unloadable files, a malformed
            drift reference, or a label count that does not match the model.
    """
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    metadata = read_json(bundle_dir / METADATA)
    runtime = runtime or _default_runtime(metadata, manifest)
    model_file, chosen = _model_file_for(bundle_dir, runtime, precision, manifest)
    class_names = tuple(str(name) for name in read_json(bundle_dir / LABELS))
    preprocessing = _read_preprocessing(bundle_dir)
    try:
        runner = _RUNNERS[runtime](model_file)
    except ExportError as exc:
        raise BundleError(exc.message, hint=_REEXPORT_HINT) from exc
    bundle = LoadedBundle(bundle_dir, runtime, class_names, preprocessing, metadata, runner, manifest, chosen,
                          _read_reference(bundle_dir, manifest))
    _check_output_width(bundle)
    return bundle


def _default_runtime(metadata: dict[str, Any], manifest: dict[str, Any]) -> str:
    configured = (metadata.get("serving") or {}).get("runtime")
    if configured:
        return str(configured)
    available = [fmt for fmt, name in EXPORT_FILES.items() if name in manifest]
    return available[0] if available else "torchscript"


def _model_file_for(bundle_dir: Path, runtime: str, precision: str, manifest: dict[str, Any]) -> tuple[Path, str]:
    """The model file to load and its precision ("fp32" or "int8")."""
    if runtime not in EXPORT_FILES:
        raise BundleError(f"unknown runtime {runtime!r}{suggest(runtime, list(EXPORT_FILES))}",
                          hint=f"runtime is one of: {', '.join(EXPORT_FILES)}")
    if precision not in PRECISIONS:
        raise BundleError(f"unknown precision {precision!r}{suggest(precision, list(PRECISIONS))}",
                          hint=f"precision is one of: {', '.join(PRECISIONS)}")
    if EXPORT_FILES[runtime] not in manifest:
        available = [fmt for fmt, name in EXPORT_FILES.items() if name in manifest]
        raise BundleError(f"bundle {bundle_dir} has no {runtime} model ({EXPORT_FILES[runtime]})",
                          hint=f"load it with runtime={available[0]!r}, or add {runtime!r} to deployment.formats")
    has_int8 = QUANTIZED_FILES[runtime] in manifest
    if precision == "int8" and not has_int8:
        raise BundleError(f"bundle {bundle_dir} has no adopted int8 {runtime} model",
                          hint="load it with precision 'fp32', or set deployment.quantize and re-export")
    if has_int8 and precision != "fp32":
        return bundle_dir / QUANTIZED_FILES[runtime], "int8"
    return bundle_dir / EXPORT_FILES[runtime], "fp32"


def _read_preprocessing(bundle_dir: Path) -> Preprocessing:
    try:
        prep = Preprocessing.from_dict(read_json(bundle_dir / PREPROCESSING))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle_dir / PREPROCESSING} is malformed: {exc}", hint=_REEXPORT_HINT) from exc
    if prep.channels not in (1, 3) or len(prep.mean) != prep.channels or len(prep.std) != prep.channels:
        raise BundleError(f"{bundle_dir / PREPROCESSING} describes {prep.channels} channels with "
                          f"{len(prep.mean)} means and {len(prep.std)} stds; need 1 or 3 of each",
                          hint=_REEXPORT_HINT)
    return prep


def _read_reference(bundle_dir: Path, manifest: dict[str, Any]) -> DriftReference | None:
    """The drift reference when the manifest lists one (an unlisted file is never trusted)."""
    if REFERENCE not in manifest:
        return None
    try:
        return DriftReference.from_dict(read_json(bundle_dir / REFERENCE))
    except (ValueError, AttributeError) as exc:
        raise BundleError(f"{bundle_dir / REFERENCE} is malformed: {exc}", hint=_REEXPORT_HINT) from exc


def _check_output_width(bundle: LoadedBundle) -> None:
    prep = bundle.preprocessing
    blank = np.zeros((1, prep.channels, prep.image_size, prep.image_size), dtype=np.float32)
    width = np.asarray(bundle.runner(blank)).shape[-1]
    if width != len(bundle.class_names):
        raise BundleError(f"bundle {bundle.path}: the model has {width} outputs but {LABELS} names "
                          f"{len(bundle.class_names)} classes", hint=_REEXPORT_HINT)
    ref = bundle.reference
    if ref is not None and (len(ref.class_frequencies) != width or len(ref.channel_mean) != prep.channels):
        raise BundleError(f"bundle {bundle.path}: {REFERENCE} describes {len(ref.channel_mean)} channels and "
                          f"{len(ref.class_frequencies)} classes, the model {prep.channels} and {width}",
                          hint=_REEXPORT_HINT)
