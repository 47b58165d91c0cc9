"""Export a trained model to TorchScript and ONNX, and prove each copy agrees.

An export is only trusted once :func:`check_parity` has run the exported file
next to the PyTorch model on the same images and the logits match within a
tolerance. :func:`export_all` does both for every requested format and
refuses (``ExportError``) to hand back a copy that disagrees.

ONNX goes through the legacy TorchScript-based exporter (``dynamo=False``):
in torch 2.14 it still works, honours ``opset_version=17`` and writes one
self-contained file. Measured on small_cnn, 2-core CPU, torch 2.14.1: legacy
0.2 s; dynamo 6 s cold and 1.7 s warm, and it cannot go below opset 18 (its
down-conversion to 17 fails) and splits weights into a ``.data`` side file
unless told otherwise. Dynamo is kept as the fallback for the day the legacy
path is removed.

torch 2.14 also marks TorchScript (script, trace, save, load) deprecated.
It still works and is what the bundle's default runtime loads, so those
notices are silenced around the calls that make them (:func:`quiet_deprecations`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from mlestar.config.catalog import suggest
from mlestar.errors import ExportError
from mlestar.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], np.ndarray]
"""Maps a float32 ``(N, C, H, W)`` batch to float32 ``(N, num_classes)`` logits."""

# Format name -> file name inside an export folder or bundle.
EXPORT_FILES: dict[str, str] = {"torchscript": "model.ts", "onnx": "model.onnx"}

_ONNX_INPUT = "input"
_ONNX_OUTPUT = "logits"
_DYNAMO_MIN_OPSET = 18  # the dynamo exporter has no implementations below 18
# Default least top-1 agreement: one near-tie flip in 64 probe images passes, two do not.
DEFAULT_MIN_TOP1_AGREEMENT = 0.98


@dataclass(frozen=True)
class ParityReport:
    """How closely an exported copy reproduces the PyTorch model's logits.

    Attributes:
        format: export format ("torchscript", "onnx").
        max_abs_diff: largest ``|exported - pytorch|`` over all logits; ``inf`` if any is not finite.
        top1_agreement: fraction of images whose arg-max class is the same.
        n_images: images compared.
        passed: ``max_abs_diff <= tolerance`` and ``top1_agreement >= min_top1_agreement``.
        tolerance: the bound the difference was held to.
        min_top1_agreement: the least agreement accepted.
    """

    format: str
    max_abs_diff: float
    top1_agreement: float
    n_images: int
    passed: bool
    tolerance: float
    min_top1_agreement: float = 0.0


# --------------------------------------------------------------------------- preparing


def export_ready(model: nn.Module) -> nn.Module:
    """A CPU, fp32, eval-mode copy, so exporting never changes the caller's model."""
    return copy.deepcopy(model).cpu().float().eval()


def _as_cpu_float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu().float().contiguous()


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Silence torch's deprecation notices for TorchScript and the legacy ONNX exporter.

    Both are used on purpose (module docstring); unsilenced, they print on
    every export and every bundle load. Only wraps torch calls.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --------------------------------------------------------------------------- TorchScript


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """Save ``model`` as TorchScript at ``path`` (atomically); return how it was made.

    Scripting keeps data-dependent control flow, so it is tried first; tracing
    records one path through ``forward`` with ``example`` and is the fallback.

    Returns:
        ``"scripted"`` or ``"traced"``.

    Raises:
        ExportError: when neither scripting nor tracing works.
    """
    model, example = export_ready(model), _as_cpu_float(example)
    try:
        with quiet_deprecations():
            module, how = torch.jit.script(model), "scripted"
    except Exception as script_error:  # noqa: BLE001  (any scripting failure means: try tracing)
        log.info("torch.jit.script failed for %s (%s); tracing instead", type(model).__name__, script_error)
        module, how = _trace(model, example, script_error), "traced"
    buffer = io.BytesIO()
    with quiet_deprecations():
        torch.jit.save(module, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return how


def _trace(model: nn.Module, example: torch.Tensor, script_error: Exception) -> torch.jit.ScriptModule:
    """Trace ``model`` with ``example``; raise ``ExportError`` naming both failures."""
    try:
        with quiet_deprecations(), torch.no_grad():
            return torch.jit.trace(model, example)
    except Exception as trace_error:  # noqa: BLE001
        raise ExportError(
            f"cannot export {type(model).__name__} to TorchScript: scripting failed ({script_error}) "
            f"and tracing failed ({trace_error})",
            hint="drop 'torchscript' from deployment.formats, or make forward() scriptable",
        ) from trace_error


def load_torchscript_runner(path: Path) -> Runner:
    """Load a TorchScript file for CPU inference.

    Raises:
        ExportError: when the file is missing or not a TorchScript archive.
    """
    try:
        with quiet_deprecations():
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, ValueError, OSError) as exc:
        raise ExportError(f"cannot load TorchScript model {path}: {exc}",
                          hint="re-export it with export_torchscript()") from exc

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).numpy()

    return run


# --------------------------------------------------------------------------- ONNX


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = 17) -> None:
    """Save ``model`` as ONNX at ``path`` (atomically) with a dynamic batch axis.

    The graph has one input ``"input"`` (``N x C x H x W`` float32) and one
    output ``"logits"``; ``N`` is symbolic so any batch size runs. The model
    is checked with ``onnx.checker`` before it is written.

    Raises:
        ExportError: when both exporters fail or the result is not valid ONNX.
    """
    import onnx  # imported here: only export needs it, and it is slow to import

    model, example = export_ready(model), _as_cpu_float(example)
    data = _onnx_bytes(model, example, opset)
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"ONNX export of {type(model).__name__} is not a valid model: {exc}",
                          hint=f"try another opset than {opset}, or drop 'onnx' from deployment.formats") from exc
    atomic_write_bytes(Path(path), data)


def _onnx_bytes(model: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    """Serialized ONNX from the legacy exporter, or from dynamo when legacy fails."""
    try:
        return _onnx_legacy(model, example, opset)
    except Exception as legacy_error:  # noqa: BLE001  (removed or failing legacy path: try dynamo)
        log.info("legacy ONNX export failed for %s (%s); trying dynamo", type(model).__name__, legacy_error)
        try:
            return _onnx_dynamo(model, example, opset)
        except Exception as dynamo_error:  # noqa: BLE001
            raise ExportError(
                f"cannot export {type(model).__name__} to ONNX: legacy exporter failed ({legacy_error}) "
                f"and dynamo exporter failed ({dynamo_error})",
                hint="drop 'onnx' from deployment.formats, or use operators ONNX supports",
            ) from dynamo_error


def _onnx_legacy(model: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    buffer = io.BytesIO()
    with quiet_deprecations():
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=opset,
            input_names=[_ONNX_INPUT], output_names=[_ONNX_OUTPUT],
            dynamic_axes={_ONNX_INPUT: {0: "batch"}, _ONNX_OUTPUT: {0: "batch"}},
        )
    return buffer.getvalue()


def _onnx_dynamo(model: nn.Module, example: torch.Tensor, opset: int) -> bytes:
    # torch.export specializes a batch of 1 to the constant 1, so export with two rows.
    if example.shape[0] == 1:
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    program = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=max(opset, _DYNAMO_MIN_OPSET),
        input_names=[_ONNX_INPUT], output_names=[_ONNX_OUTPUT],
        dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False,
    )
    return program.model_proto.SerializeToString()


def load_onnx_runner(path: Path, threads: int | None = None) -> Runner:
    """Load an ONNX file into an onnxruntime CPU session with ``threads`` intra-op threads.

    ``threads`` None: at most 4, the serving default.

    Raises:
        ExportError: when onnxruntime cannot load the file.
    """
    return _session_runner(str(path), threads, f"ONNX model {path}")


def onnx_runner(model: nn.Module, example: torch.Tensor, threads: int | None = None, opset: int = 17) -> Runner:
    """An onnxruntime CPU session over ``model`` exported in memory: no file, and no ``onnx.checker``.

    For callers that hold the runner to :func:`check_parity` before trusting
    it (stage 5's evaluation runtime); :func:`export_onnx` is the checked,
    written export for bundles.

    Raises:
        ExportError: when both exporters fail or onnxruntime cannot load the graph.
    """
    data = _onnx_bytes(export_ready(model), _as_cpu_float(example), opset)
    return _session_runner(data, threads, f"the ONNX export of {type(model).__name__}")


def _session_runner(source: str | bytes, threads: int | None, what: str) -> Runner:
    """A runner over an onnxruntime CPU session on a file path or serialized model bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # A few intra-op threads speed up one request; more just contend with the web server.
    options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: onnxruntime's warnings are noise for users
    try:
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own unexported types)
        raise ExportError(f"cannot load {what}: {exc}", hint="re-export it with export_onnx()") from exc
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return run


# --------------------------------------------------------------------------- parity


def check_parity(reference: nn.Module, runner: Runner, images: torch.Tensor, tolerance: float,
                 fmt: str, min_top1_agreement: float = 0.0) -> ParityReport:
    """Run ``images`` through ``reference`` and ``runner`` and compare the logits.

    The report passes when the largest logit difference is within
    ``tolerance`` and the top-1 classes agree on at least
    ``min_top1_agreement`` of the images.

    Raises:
        ExportError: when the two disagree on the output shape.
    """
    images = _as_cpu_float(images)
    with torch.inference_mode():
        expected = export_ready(reference)(images).numpy()
    actual = np.asarray(runner(images.numpy()))
    if actual.shape != expected.shape:
        raise ExportError(f"{fmt} export returns logits of shape {actual.shape}, PyTorch {expected.shape}",
                          hint=f"re-export, or drop {fmt!r} from deployment.formats")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    # NaN compares false with everything, so report it as an infinite difference.
    max_diff = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    agreement = float(np.mean(actual.argmax(axis=1) == expected.argmax(axis=1)))
    passed = max_diff <= tolerance and agreement >= min_top1_agreement
    return ParityReport(fmt, max_diff, agreement, len(images), passed, tolerance, min_top1_agreement)


# --------------------------------------------------------------------------- all formats


def export_all(model: nn.Module, example_batch: torch.Tensor, out_dir: Path, formats: list[str],
               tolerance: float, min_top1_agreement: float = DEFAULT_MIN_TOP1_AGREEMENT) -> dict[str, ParityReport]:
    """Export ``model`` in each format into ``out_dir`` and check each copy's parity.

    Files are named by :data:`EXPORT_FILES`. ``example_batch`` is used both to
    trace/export and as the parity probe, so it should hold real images.

    Returns:
        format -> its passing :class:`ParityReport`.

    Raises:
        ExportError: on an unknown format, a failed export, or a copy whose
            logits differ from PyTorch by more than ``tolerance`` or whose
            top-1 agrees on fewer than ``min_top1_agreement`` of the images
            (that file is deleted so it cannot be bundled by mistake).
    """
    _check_formats(formats)
    reports: dict[str, ParityReport] = {}
    for fmt in formats:
        path = Path(out_dir) / EXPORT_FILES[fmt]
        runner = _export_one(fmt, model, example_batch, path)
        report = check_parity(model, runner, example_batch, tolerance, fmt, min_top1_agreement)
        if not report.passed:
            path.unlink(missing_ok=True)
            raise _parity_error(model, report)
        log.info("%s export of %s: max |diff| %.3g", fmt, type(model).__name__, report.max_abs_diff)
        reports[fmt] = report
    return reports


def _check_formats(formats: list[str]) -> None:
    for fmt in formats:
        if fmt not in EXPORT_FILES:
            raise ExportError(f"unknown export format {fmt!r}{suggest(fmt, list(EXPORT_FILES))}",
                              hint=f"deployment.formats may list: {', '.join(EXPORT_FILES)}")


def _export_one(fmt: str, model: nn.Module, example: torch.Tensor, path: Path) -> Runner:
    """Write one format to ``path`` and return a runner over the written file."""
    if fmt == "torchscript":
        export_torchscript(model, example, path)
        return load_torchscript_runner(path)
    export_onnx(model, example, path)
    return load_onnx_runner(path)


def _parity_error(model: nn.Module, report: ParityReport) -> ExportError:
    if report.max_abs_diff > report.tolerance:
        what = f"max |diff| {report.max_abs_diff:.3g} exceeds tolerance {report.tolerance:.3g}"
        knob = "deployment.parity_tolerance"
    else:
        what = f"top-1 agreement is below {report.min_top1_agreement:.1%}"
        knob = "deployment.min_top1_agreement"
    return ExportError(
        f"{report.format} export of {type(model).__name__} disagrees with PyTorch: {what} "
        f"(top-1 agreement {report.top1_agreement:.1%}, max |diff| {report.max_abs_diff:.3g} "
        f"on {report.n_images} images)",
        hint=f"relax {knob} if the difference is harmless, or drop {report.format!r} from deployment.formats",
    )
