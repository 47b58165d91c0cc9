"""Stage 5's forward pass: ONNX Runtime only where it reproduces PyTorch, PyTorch otherwise, and why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlestar.deploy.export as export
from mlestar.errors import ExportError
from mlestar.deploy.eval_runtime import PARITY_IMAGES, PARITY_TOLERANCE, OnnxModule, evaluation_forward
from mlestar.models import create_model
from mlestar.training.loop import evaluate_logits


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("airbench_xs", num_classes=10, in_channels=3, image_size=16).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(300, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_auto_runs_onnxruntime_and_reproduces_pytorch_on_unseen_images(model: torch.nn.Module,
                                                                        images: torch.Tensor) -> None:
    forward = evaluation_forward(model, images[:64])
    assert forward.runtime == "onnxruntime" and isinstance(forward.module, OnnxModule)
    assert forward.channels_last is False
    assert forward.parity is not None and forward.parity["images"] == 64  # fewer than PARITY_IMAGES given
    assert forward.parity["top1_agreement"] == 1.0 and forward.parity["max_abs_diff"] <= PARITY_TOLERANCE
    unseen = images[64:]  # not the parity probe, and an odd batch split (batch 100)
    ours = evaluate_logits(forward.module, unseen, batch_size=100)
    reference = evaluate_logits(model, unseen)
    assert ours.shape == reference.shape == (236, 10)
    assert torch.equal(ours.argmax(1), reference.argmax(1))
    assert float((ours - reference).abs().max()) < PARITY_TOLERANCE
    assert forward.record()["runtime"] == "onnxruntime" and "ONNX Runtime" in forward.record()["reason"]


def test_the_probe_is_capped_at_parity_images(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = export.check_parity

    def spied(reference: Any, runner: Any, probe: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(len(probe))
        return original(reference, runner, probe, *args, **kwargs)

    monkeypatch.setattr(export, "check_parity", spied)
    evaluation_forward(model, torch.randn(PARITY_IMAGES + 50, 3, 16, 16))
    assert seen == [PARITY_IMAGES]


def test_torch_choice_keeps_the_model_in_channels_last(images: torch.Tensor) -> None:
    net = create_model("airbench_xs", num_classes=10, in_channels=3, image_size=16)
    forward = evaluation_forward(net, images[:8], channels_last=True, choice="torch")
    assert forward.runtime == "torch" and forward.module is net and forward.channels_last
    assert forward.parity is None and "evaluation.runtime is torch" in forward.reason
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def _failing_export(*_: Any, **__: Any) -> None:
    raise ExportError("cannot export Net to ONNX: no symbolic for op Foo")


def test_a_failed_export_falls_back_to_pytorch_on_auto_and_raises_when_asked_for(
        model: torch.nn.Module, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "onnx_runner", _failing_export)
    forward = evaluation_forward(model, images[:16])
    assert forward.runtime == "torch" and forward.module is model
    assert "ONNX Runtime not used: cannot export Net to ONNX" in forward.reason
    with pytest.raises(ExportError, match="no symbolic for op Foo"):
        evaluation_forward(model, images[:16], choice="onnxruntime")


def test_a_graph_that_disagrees_is_not_used(model: torch.nn.Module, images: torch.Tensor,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    original = export.onnx_runner

    def skewed(net: Any, example: Any, threads: int | None = None) -> Any:
        runner = original(net, example, threads)
        return lambda batch: runner(batch) + np.linspace(0, 1, 10, dtype=np.float32)  # shifts some argmaxes

    monkeypatch.setattr(export, "onnx_runner", skewed)
    forward = evaluation_forward(model, images[:64])
    assert forward.runtime == "torch"
    assert "disagrees with PyTorch on 64 validation images" in forward.reason
    with pytest.raises(ExportError, match="evaluation.runtime: torch"):
        evaluation_forward(model, images[:64], choice="onnxruntime")
