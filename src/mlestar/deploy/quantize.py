"""Optional int8 copies of an exported model, adopted only when they keep their accuracy.

Two methods, both *dynamic* (weights stored as int8, activations quantized on
the fly, so no calibration set is needed):

- ``"dynamic"``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear``
  layers, saved as TorchScript. PyTorch's dynamic quantization has no
  convolution kernels, so on a conv net only the classifier head changes:
  it works, but the file is as large and as fast as fp32 (airbench_xs on
  CIFAR: 555 kB either way).
- ``"onnx"``: onnxruntime's ``quantize_dynamic`` on the ONNX export. It
  turns every Conv into ``ConvInteger`` and the head into ``MatMulInteger``,
  so a conv net really shrinks (airbench_xs: 223 kB -> 76 kB). This is the
  method that does something for conv nets on CPU. Two details make it
  work: the graph is first run through onnxruntime's ``quant_pre_process``
  (constant folding and shape inference; without it airbench's conv
  weights are computed by nodes rather than stored, and quantization stops
  with "Expected ... to be an initializer"), and weights are uint8
  (``U8U8``), which avoids the int8 saturation onnxruntime documents for
  ``U8S8`` kernels on AVX2 machines such as the 2-core dev CPU.

Measured on that CPU (airbench_xs, random init, 32x32): ONNX int8 runs
1.0 ms at batch 1 and 630 img/s at batch 32 against 0.33 ms and 2,000 img/s
for fp32: ``ConvInteger`` without AVX-512 VNNI is slower than fp32 MLAS
convolutions. The int8 model is therefore a size win, not a speed win, here;
``deployment.json`` reports both so the choice is visible.

The accuracy change is measured on the validation split (never test) and
the copy is adopted only within ``deployment.max_quantized_accuracy_drop``.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from mlestar.deploy.export import (Runner, export_ready, quiet_deprecations, export_torchscript,
                                   load_onnx_runner, load_torchscript_runner)
from mlestar.errors import ExportError
from mlestar.utils.io import atomic_write_bytes

METHODS = ("dynamic", "onnx")
# Quantization method -> the runtime whose export it quantizes.
METHOD_RUNTIME: dict[str, str] = {"dynamic": "torchscript", "onnx": "onnx"}
# Runtime -> file name of its int8 copy inside an export folder or bundle.
QUANTIZED_FILES: dict[str, str] = {"torchscript": "model.int8.ts", "onnx": "model.int8.onnx"}
_EVAL_BATCH = 256
_TORCH_DYNAMIC = "torch.ao.nn.quantized.dynamic"  # module prefix of dynamically quantized layers


@dataclass(frozen=True)
class QuantizationReport:
    """What quantizing did to size and validation accuracy, and whether the copy was adopted.

    Attributes:
        method: "dynamic" or "onnx".
        runtime: the runtime that serves the copy ("torchscript" or "onnx").
        file: the int8 file name (:data:`QUANTIZED_FILES`).
        quantized_ops: layers (torch) or graph nodes (ONNX) running in int8.
        fp32_accuracy, int8_accuracy: accuracy on the validation images of the
            fp32 export and of the int8 copy, same runtime.
        accuracy_drop: ``fp32_accuracy - int8_accuracy`` (negative: int8 did better).
        max_accuracy_drop: the allowed drop.
        top1_agreement: share of validation images on which both copies pick the same class.
        n_images: validation images compared.
        fp32_bytes, int8_bytes: file sizes.
        adopted: ``accuracy_drop <= max_accuracy_drop``.
    """

    method: str
    runtime: str
    file: str
    quantized_ops: int
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_drop: float
    max_accuracy_drop: float
    top1_agreement: float
    n_images: int
    fp32_bytes: int
    int8_bytes: int
    adopted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- making int8 copies


def quantize_torch_dynamic(model: nn.Module, example: torch.Tensor, path: Path) -> int:
    """Write a TorchScript copy of ``model`` with int8 dynamic ``nn.Linear`` layers; return how many.

    Raises:
        ExportError: when quantization or the TorchScript export fails.
    """
    try:
        with _quiet_quantization():
            quantized = torch.ao.quantization.quantize_dynamic(export_ready(model), {nn.Linear},
                                                               dtype=torch.qint8)
    except (RuntimeError, AssertionError, TypeError) as exc:
        raise ExportError(f"torch dynamic quantization of {type(model).__name__} failed: {exc}",
                          hint="set deployment.quantize to 'onnx' or 'none'") from exc
    with _quiet_quantization():
        export_torchscript(quantized, example, path)
    return sum(1 for module in quantized.modules() if type(module).__module__.startswith(_TORCH_DYNAMIC))


@contextlib.contextmanager
def _quiet_quantization() -> Iterator[None]:
    """Silence torch 2.14's notices that ``torch.ao`` quantization and quantized tensors are deprecated.

    Their replacement (torchao) is not a dependency; the deprecated path
    still works, and the notices would otherwise print on every export.
    """
    with quiet_deprecations(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        yield


def quantize_onnx_dynamic(fp32_path: Path, path: Path) -> int:
    """Write an int8 copy of the ONNX model at ``fp32_path`` to ``path``; return the integer nodes.

    Raises:
        ExportError: when onnxruntime cannot pre-process or quantize the graph.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            # Folds constants, so every conv weight is an initializer the quantizer can rewrite.
            quant_pre_process(str(fp32_path), str(prepared))
            quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QUInt8)
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises ValueError, RuntimeError and its own)
            raise ExportError(f"onnxruntime dynamic quantization of {fp32_path} failed: {exc}",
                              hint="set deployment.quantize to 'dynamic' or 'none'") from exc
        data = quantized.read_bytes()
    atomic_write_bytes(Path(path), data)
    return sum(1 for node in onnx.load_from_string(data).graph.node if "Integer" in node.op_type)


# --------------------------------------------------------------------------- measuring


def runner_predictions(run: Runner, images: np.ndarray, batch: int = _EVAL_BATCH) -> np.ndarray:
    """Top-1 class of each image in float32 ``(N, C, H, W)`` ``images``, in batches."""
    parts = [np.asarray(run(images[start:start + batch])).argmax(axis=1) for start in range(0, len(images), batch)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def quantize_and_compare(method: str, model: nn.Module, example: torch.Tensor, fp32_file: Path, out_dir: Path,
                         images: np.ndarray, labels: np.ndarray, max_drop: float) -> QuantizationReport:
    """Make the int8 copy for ``method`` in ``out_dir`` and compare it with ``fp32_file`` on ``images``.

    ``images`` and ``labels`` must come from the validation split: the
    adoption decision is a model choice, and the test split is kept for the
    final, unbiased number.

    Raises:
        ExportError: on an unknown method, no validation images, or a failed quantization.
    """
    if method not in METHODS:
        raise ExportError(f"unknown quantization method {method!r}", hint=f"use one of: none, {', '.join(METHODS)}")
    if len(images) == 0:
        raise ExportError("cannot measure the int8 model's accuracy: the validation split is empty",
                          hint="set deployment.quantize: none, or keep a validation split (data.val_fraction)")
    runtime = METHOD_RUNTIME[method]
    path = Path(out_dir) / QUANTIZED_FILES[runtime]
    if method == "dynamic":
        ops, load = quantize_torch_dynamic(model, example, path), load_torchscript_runner
    else:
        ops, load = quantize_onnx_dynamic(fp32_file, path), load_onnx_runner
    fp32 = runner_predictions(load(fp32_file), images)
    int8 = runner_predictions(load(path), images)
    return _report(method, runtime, path, fp32_file, ops, fp32, int8, labels, max_drop)


def _report(method: str, runtime: str, path: Path, fp32_file: Path, ops: int, fp32: np.ndarray, int8: np.ndarray,
            labels: np.ndarray, max_drop: float) -> QuantizationReport:
    fp32_acc, int8_acc = float(np.mean(fp32 == labels)), float(np.mean(int8 == labels))
    drop = fp32_acc - int8_acc
    return QuantizationReport(
        method=method, runtime=runtime, file=path.name, quantized_ops=ops, fp32_accuracy=fp32_acc,
        int8_accuracy=int8_acc, accuracy_drop=drop, max_accuracy_drop=max_drop,
        top1_agreement=float(np.mean(fp32 == int8)), n_images=len(labels),
        fp32_bytes=Path(fp32_file).stat().st_size, int8_bytes=path.stat().st_size,
        # A tiny epsilon so a drop equal to the bound (in float arithmetic) still counts as within it.
        adopted=drop <= max_drop + 1e-12)
