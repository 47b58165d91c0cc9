"""int8 copies: both methods work, accuracy is measured, a lossy copy is rejected, bundles load int8."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from deploy_helpers import brightness_images, make_model, normalize, write_test_bundle
from torch import nn

from mlestar.deploy import QUANTIZED_FILES, QuantizationReport, load_bundle, quantize_and_compare, verify_bundle
from mlestar.deploy.export import export_all
from mlestar.deploy.quantize import runner_predictions
from mlestar.errors import BundleError, ExportError


@pytest.fixture(scope="module")
def val() -> tuple[np.ndarray, np.ndarray]:
    """120 validation-like images (dark, mid, bright) and their labels."""
    images, labels = brightness_images(120, seed=3)
    return normalize(images).numpy(), labels


def _lossy_model() -> nn.Module:
    """The test model plus one huge head weight on a feature that is always 0.

    fp32 logits are unchanged (the weight multiplies zero), but a per-tensor
    int8 scale stretched to fit it rounds every other head weight to 0, so
    the int8 copy forgets what it learned: a real accuracy loss, not a mock.
    """
    model = make_model()
    with torch.no_grad():
        last_bn = model.features[-1][1]
        last_bn.bias[0] = -1e3  # channel 0 is always negative before the ReLU: its pooled feature is 0
        model.head.weight[0, 0] = 1e4
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, model: nn.Module, images: torch.Tensor) -> Path:
    out = tmp_path_factory.mktemp("quantize")
    export_all(model, images, out, ["torchscript", "onnx"], tolerance=1e-4)
    return out


@pytest.fixture(scope="module")
def onnx_int8(exported: Path, model: nn.Module, images: torch.Tensor,
              val: tuple[np.ndarray, np.ndarray]) -> QuantizationReport:
    return quantize_and_compare("onnx", model, images, exported / "model.onnx", exported, *val, max_drop=0.01)


def test_onnx_dynamic_quantizes_the_convolutions_and_keeps_accuracy(onnx_int8: QuantizationReport,
                                                                    exported: Path) -> None:
    graph = onnx.load(str(exported / "model.int8.onnx")).graph
    ops = {node.op_type for node in graph.node}
    assert {"ConvInteger", "MatMulInteger"} <= ops and "Conv" not in ops
    assert onnx_int8.quantized_ops == sum(1 for node in graph.node if "Integer" in node.op_type) == 3
    assert (onnx_int8.method, onnx_int8.runtime, onnx_int8.file) == ("onnx", "onnx", "model.int8.onnx")
    assert onnx_int8.fp32_accuracy == 1.0 and onnx_int8.int8_accuracy == 1.0
    assert onnx_int8.accuracy_drop == 0.0 and onnx_int8.adopted and onnx_int8.n_images == 120
    assert onnx_int8.top1_agreement == 1.0
    assert onnx_int8.int8_bytes == (exported / "model.int8.onnx").stat().st_size


def test_torch_dynamic_quantizes_only_the_linear_head(exported: Path, model: nn.Module, images: torch.Tensor,
                                                      val: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    shutil.copy(exported / "model.ts", tmp_path / "model.ts")
    report = quantize_and_compare("dynamic", model, images, tmp_path / "model.ts", tmp_path, *val, max_drop=0.0)
    assert (report.runtime, report.file, report.quantized_ops) == ("torchscript", "model.int8.ts", 1)
    assert report.accuracy_drop == 0.0 and report.adopted  # a drop of 0 is within a bound of 0
    from mlestar.deploy import load_torchscript_runner

    int8 = runner_predictions(load_torchscript_runner(tmp_path / "model.int8.ts"), val[0])
    assert (int8 == val[1]).mean() == 1.0


@pytest.mark.parametrize(("method", "fp32_name"), [("dynamic", "model.ts"), ("onnx", "model.onnx")])
def test_a_copy_that_loses_accuracy_is_measured_and_rejected(tmp_path: Path, images: torch.Tensor,
                                                             val: tuple[np.ndarray, np.ndarray], method: str,
                                                             fp32_name: str) -> None:
    lossy = _lossy_model()
    export_all(lossy, images, tmp_path, ["torchscript", "onnx"], tolerance=1e-4)  # fp32 copies still agree
    report = quantize_and_compare(method, lossy, images, tmp_path / fp32_name, tmp_path, *val, max_drop=0.01)
    assert report.fp32_accuracy == 1.0
    assert report.int8_accuracy <= 0.7 and report.accuracy_drop == pytest.approx(1.0 - report.int8_accuracy)
    assert not report.adopted and report.max_accuracy_drop == 0.01


def test_bad_requests_are_export_errors(exported: Path, model: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ExportError, match="unknown quantization method 'static'"):
        quantize_and_compare("static", model, images, exported / "model.onnx", exported, np.zeros((1, 1, 8, 8)),
                             np.zeros(1), 0.01)
    with pytest.raises(ExportError, match="validation split is empty"):
        quantize_and_compare("onnx", model, images, exported / "model.onnx", exported,
                             np.zeros((0, 1, 8, 8), np.float32), np.zeros(0), 0.01)
    with pytest.raises(ExportError, match="onnxruntime dynamic quantization"):
        quantize_and_compare("onnx", model, images, exported / "model.ts", exported, np.zeros((1, 1, 8, 8)),
                             np.zeros(1), 0.01)


# --------------------------------------------------------------------------- bundles with an int8 model


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, exported: Path, onnx_int8: QuantizationReport) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("int8"), exported,
                             quantized_files={"onnx": exported / QUANTIZED_FILES["onnx"]})


def test_an_adopted_int8_model_is_bundled_checksummed_and_loaded_by_default(
        int8_bundle: Path, val: tuple[np.ndarray, np.ndarray]) -> None:
    assert "model.int8.onnx" in verify_bundle(int8_bundle)
    bundle = load_bundle(int8_bundle, runtime="onnx")
    assert bundle.precision == "int8"
    assert (runner_predictions(bundle.runner, val[0]) == val[1]).mean() == 1.0
    assert load_bundle(int8_bundle, runtime="onnx", precision="fp32").precision == "fp32"
    assert load_bundle(int8_bundle, runtime="torchscript").precision == "fp32"  # no int8 TorchScript here


def test_int8_requests_the_bundle_cannot_meet_are_refused(int8_bundle: Path, tmp_path: Path,
                                                          exported: Path) -> None:
    with pytest.raises(BundleError, match="no adopted int8 torchscript model"):
        load_bundle(int8_bundle, runtime="torchscript", precision="int8")
    with pytest.raises(BundleError, match="unknown precision 'int4'"):
        load_bundle(int8_bundle, runtime="onnx", precision="int4")
    with pytest.raises(BundleError, match="int8 onnx model given without the fp32 onnx model"):
        write_test_bundle(tmp_path / "b", exported, formats=("torchscript",),
                          quantized_files={"onnx": exported / "model.int8.onnx"})


def test_a_tampered_int8_model_refuses_to_load(int8_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(int8_bundle, tmp_path / "bundle"))
    with open(copy / "model.int8.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="model.int8.onnx does not match its checksum"):
        load_bundle(copy, runtime="onnx")


def test_rewriting_without_int8_removes_the_stale_copy(int8_bundle: Path, tmp_path: Path, exported: Path) -> None:
    copy = Path(shutil.copytree(int8_bundle, tmp_path / "bundle"))
    write_test_bundle(copy, exported)
    assert not (copy / "model.int8.onnx").exists()
    assert load_bundle(copy, runtime="onnx").precision == "fp32"
