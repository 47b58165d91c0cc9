"""Export to TorchScript and ONNX, and the parity check that guards both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from deploy_helpers import make_model
from torch import nn

from mlestar.deploy import (
    ParityReport,
    check_parity,
    export_all,
    export_onnx,
    export_torchscript,
    load_onnx_runner,
    load_torchscript_runner,
)
from mlestar.deploy import export as export_module
from mlestar.errors import ExportError


class Unscriptable(nn.Module):
    """``*inputs`` in forward cannot be scripted, but traces fine."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 3)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(inputs[0].flatten(1))


class ScriptedDiffers(nn.Module):
    """Its scripted copy adds 0.5 to every logit: a deliberately wrong TorchScript export."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x.flatten(1))
        if torch.jit.is_scripting():
            logits = logits + 0.5
        return logits


class OnnxDiffers(nn.Module):
    """Its ONNX copy scales logits by 1.01: a deliberately (slightly) wrong ONNX export."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(x.flatten(1))
        if torch.onnx.is_in_onnx_export():
            logits = logits * 1.01
        return logits


def _torch_logits(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(images).numpy()


def test_torchscript_scripts_small_cnn_and_reproduces_logits(tmp_path: Path, model: nn.Module,
                                                             images: torch.Tensor) -> None:
    path = tmp_path / "model.ts"
    assert export_torchscript(model, images[:2], path) == "scripted"
    out = load_torchscript_runner(path)(images.numpy())
    assert out.shape == (16, 3)
    assert np.abs(out - _torch_logits(model, images)).max() < 1e-5


def test_torchscript_falls_back_to_tracing(tmp_path: Path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = Unscriptable().eval()
    path = tmp_path / "model.ts"
    assert export_torchscript(model, images[:4], path) == "traced"
    out = load_torchscript_runner(path)(images.numpy())
    assert np.abs(out - _torch_logits(model, images)).max() < 1e-5


def test_torchscript_leaves_no_temp_files(tmp_path: Path, model: nn.Module, images: torch.Tensor) -> None:
    export_torchscript(model, images[:2], tmp_path / "model.ts")
    assert [p.name for p in tmp_path.iterdir()] == ["model.ts"]


def test_onnx_has_named_io_dynamic_batch_and_opset(tmp_path: Path, model: nn.Module, images: torch.Tensor) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(model, images[:2], path, opset=17)
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic, not a fixed size
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # one self-contained file


@pytest.mark.parametrize("batch", [1, 5, 16])
def test_onnx_runs_any_batch_size_with_tiny_error(tmp_path: Path, model: nn.Module, images: torch.Tensor,
                                                  batch: int) -> None:
    path = tmp_path / "model.onnx"
    export_onnx(model, images[:2], path)
    out = load_onnx_runner(path)(images[:batch].numpy())
    assert out.shape == (batch, 3)
    assert np.abs(out - _torch_logits(model, images[:batch])).max() < 1e-5


def test_parity_measures_the_difference(model: nn.Module, images: torch.Tensor) -> None:
    def shifted(batch: np.ndarray) -> np.ndarray:
        return _torch_logits(model, torch.from_numpy(batch)) + 0.01

    loose = check_parity(model, shifted, images, tolerance=0.02, fmt="fake")
    assert loose.max_abs_diff == pytest.approx(0.01, abs=1e-5)
    assert loose.top1_agreement == 1.0  # a constant shift never changes the arg-max
    assert (loose.n_images, loose.passed, loose.format, loose.tolerance) == (16, True, "fake", 0.02)
    assert not check_parity(model, shifted, images, tolerance=1e-3, fmt="fake").passed


def test_parity_counts_top1_disagreements(model: nn.Module, images: torch.Tensor) -> None:
    expected = _torch_logits(model, images)

    def half_reversed(batch: np.ndarray) -> np.ndarray:
        out = expected.copy()
        out[:8] = -out[:8]  # the arg-max of a negated row is its old arg-min
        return out

    report = check_parity(model, half_reversed, images, tolerance=1.0, fmt="fake")
    assert report.top1_agreement == 0.5


def test_parity_fails_below_the_least_top1_agreement_even_within_tolerance(model: nn.Module,
                                                                            images: torch.Tensor) -> None:
    """Near-tied logits can swap their arg-max by less than the tolerance: agreement is checked on its own."""
    tie = nn.Linear(64, 3)
    with torch.no_grad():
        tie.weight.zero_()
        tie.bias.copy_(torch.tensor([0.0, 1e-6, 0.0]))
    tied = nn.Sequential(nn.Flatten(), tie).eval()  # every image: class 1 by one millionth

    def flipped(batch: np.ndarray) -> np.ndarray:
        return np.tile(np.array([[2e-6, 0.0, 0.0]], np.float32), (len(batch), 1))  # class 0

    report = check_parity(tied, flipped, images, tolerance=1e-4, fmt="fake", min_top1_agreement=0.98)
    assert report.max_abs_diff <= 1e-4 and report.top1_agreement == 0.0
    assert not report.passed and report.min_top1_agreement == 0.98
    assert check_parity(tied, flipped, images, tolerance=1e-4, fmt="fake").passed  # no least agreement: passes


def test_export_all_names_the_agreement_knob_when_top1_fails(tmp_path: Path, images: torch.Tensor,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def disagreeing(*args: object, **kwargs: object) -> ParityReport:
        return ParityReport("torchscript", 1e-7, 0.5, 16, False, 1e-4, 0.98)

    monkeypatch.setattr(export_module, "check_parity", disagreeing)
    with pytest.raises(ExportError, match="top-1 agreement is below 98.0%") as caught:
        export_all(make_model(), images, tmp_path, ["torchscript"], tolerance=1e-4)
    assert "deployment.min_top1_agreement" in (caught.value.hint or "")
    assert not (tmp_path / "model.ts").exists()  # the disagreeing copy is deleted


def test_parity_treats_nan_as_failure(model: nn.Module, images: torch.Tensor) -> None:
    report = check_parity(model, lambda b: np.full((len(b), 3), np.nan, np.float32), images, 1e9, "fake")
    assert report.max_abs_diff == float("inf")
    assert not report.passed


def test_parity_refuses_wrong_shape(model: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ExportError, match=r"onnx export returns logits of shape \(16, 4\)"):
        check_parity(model, lambda b: np.zeros((len(b), 4), np.float32), images, 1e-4, "onnx")


def test_export_all_passes_both_formats_with_tiny_differences(export_dir: Path, model: nn.Module,
                                                              images: torch.Tensor, tmp_path: Path) -> None:
    reports = export_all(model, images, tmp_path, ["torchscript", "onnx"], tolerance=1e-4)
    assert set(reports) == {"torchscript", "onnx"}
    for fmt, report in reports.items():
        assert isinstance(report, ParityReport)
        assert report.passed and report.format == fmt
        assert report.max_abs_diff < 1e-5
        assert report.top1_agreement == 1.0
        assert report.n_images == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.ts"]


def test_export_all_leaves_a_training_model_in_training_mode(tmp_path: Path, images: torch.Tensor) -> None:
    model = make_model().train()
    reports = export_all(model, images, tmp_path, ["torchscript"], tolerance=1e-4)
    assert model.training  # exporting worked on an eval copy
    assert reports["torchscript"].max_abs_diff < 1e-5  # and parity compared eval against eval


def test_export_all_refuses_a_perturbed_torchscript_copy(tmp_path: Path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    with pytest.raises(ExportError) as caught:
        export_all(ScriptedDiffers().eval(), images, tmp_path, ["torchscript"], tolerance=1e-4)
    message = str(caught.value)
    assert "torchscript export of ScriptedDiffers disagrees" in message
    assert "max |diff| 0.5 exceeds tolerance 0.0001" in message
    assert "parity_tolerance" in (caught.value.hint or "")
    assert not (tmp_path / "model.ts").exists()  # a copy that failed parity must not be bundled


def test_export_all_refuses_a_perturbed_onnx_copy(tmp_path: Path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = OnnxDiffers().eval()
    with pytest.raises(ExportError, match=r"onnx export of OnnxDiffers disagrees .* tolerance 1e-05"):
        export_all(model, images, tmp_path, ["torchscript", "onnx"], tolerance=1e-5)
    assert (tmp_path / "model.ts").exists() and not (tmp_path / "model.onnx").exists()


def test_export_all_suggests_a_known_format(tmp_path: Path, model: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(ExportError, match="unknown export format 'onxx'; did you mean 'onnx'"):
        export_all(model, images, tmp_path, ["onxx"], tolerance=1e-4)


def test_loading_a_missing_export_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot load TorchScript model"):
        load_torchscript_runner(tmp_path / "absent.ts")
    with pytest.raises(ExportError, match="cannot load ONNX model"):
        load_onnx_runner(tmp_path / "absent.onnx")


@pytest.mark.slow
def test_onnx_falls_back_to_dynamo_when_legacy_fails(tmp_path: Path, model: nn.Module, images: torch.Tensor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(*_: object) -> bytes:
        raise RuntimeError("legacy exporter removed")

    monkeypatch.setattr(export_module, "_onnx_legacy", gone)
    path = tmp_path / "model.onnx"
    export_onnx(model, images[:1], path)  # a batch of 1 must still give a dynamic batch axis
    out = load_onnx_runner(path)(images.numpy())
    assert np.abs(out - _torch_logits(model, images)).max() < 1e-5
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
