"""benchmarks/anchors.py: the airbench package runs on a CPU through the listed shims, and they are undone."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mlestar.data.dataset import ImageSplit

pytest.importorskip("airbench")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "anchors.py"


@pytest.fixture(scope="module")
def anchors():
    spec = importlib.util.spec_from_file_location("anchors_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split(n: int, seed: int) -> ImageSplit:
    rng = np.random.default_rng(seed)
    return ImageSplit(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64))


def test_train94_runs_on_cpu_through_the_shims_and_they_are_undone(anchors, tmp_path: Path) -> None:
    cuda, half, event = torch.nn.Module.cuda, torch.nn.Module.half, torch.cuda.Event
    anchors.write_airbench_data(tmp_path, _split(256, 0), _split(64, 1), [str(i) for i in range(10)])
    cwd, shims = os.getcwd(), []
    os.chdir(tmp_path)
    try:
        row = anchors.airbench_row(0, torch.device("cpu"), 1, shims, batch_size=128)
    finally:
        os.chdir(cwd)
    assert row["row"] == "airbench94" and row["seconds"] > 0
    assert row["images"] == 2 * 128  # 256 images: 2 full batches of 128, one epoch
    assert 0.0 <= row["plain"] <= 1.0 and 0.0 <= row["tta"] <= 1.0
    assert any("cuda()" in s for s in shims) and any("fp32" in s for s in shims)
    assert torch.nn.Module.cuda is cuda and torch.nn.Module.half is half and torch.cuda.Event is event


def test_train94_data_layout_is_airbench_s(anchors, tmp_path: Path) -> None:
    anchors.write_airbench_data(tmp_path, _split(16, 0), _split(8, 1), list("abcdefghij"))
    saved = torch.load(tmp_path / "cifar10" / "train.pt")
    assert saved["images"].shape == (16, 32, 32, 3) and saved["images"].dtype == torch.uint8
    assert saved["classes"] == list("abcdefghij") and len(saved["labels"]) == 16


def test_epochs_for_a_time_share(anchors) -> None:
    assert anchors.epochs_for(100.0, 9.0) == 11
    assert anchors.epochs_for(0.8 * 100.0, 9.0) == 8
    assert anchors.epochs_for(1.0, 9.0) == 1  # never zero epochs


def test_summary_ratios_are_against_airbench94(anchors) -> None:
    rows = [{"row": "airbench94", "seed": s, "epochs": 9.9, "seconds": 100.0 + s, "plain": 0.9, "tta": 0.91 + s / 100,
             "images": 1000}
            for s in (0, 2)]
    rows += [{"row": "mlestar, 0.8x time", "seed": s, "epochs": 8, "seconds": 80.0, "plain": 0.9, "tta": 0.925,
              "images": 800}
             for s in (0, 2)]
    summary = {s["row"]: s for s in anchors.summarise(rows)}
    assert summary["airbench94"]["time_ratio"] == pytest.approx(1.0)
    assert summary["mlestar, 0.8x time"]["time_ratio"] == pytest.approx(80.0 / 101.0)
    assert summary["mlestar, 0.8x time"]["tta_gain_points"] == pytest.approx(0.5)
    assert summary["mlestar, 0.8x time"]["images_per_second"] == pytest.approx(10.0)
    assert summary["airbench94"]["tta_sd"] == pytest.approx(np.std([0.91, 0.93], ddof=1))


def test_mlestar_row_trains_the_recipe_at_the_asked_epochs(anchors) -> None:
    import argparse

    from mlestar.data.dataset import Preprocessing
    from mlestar.training.loop import split_to_tensors

    prep = Preprocessing(image_size=32, channels=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    train = split_to_tensors(_split(128, 0), prep, torch.device("cpu"))
    test = split_to_tensors(_split(64, 1), prep, torch.device("cpu"))
    for optimizer in ("sgd", "muon"):
        args = argparse.Namespace(model="airbench_xs", batch=128, compile=False, optimizer=optimizer)
        row = anchors.mlestar_row("mlestar, same epochs", (train, (train[0][:32], train[1][:32])), test, args, 0, 2,
                                  "fp32")
        assert row["epochs"] == 2 and row["batch"] == 128 and row["seconds"] > 0 and row["images"] == 2 * 128
        assert 0.0 <= row["plain"] <= 1.0 and 0.0 <= row["tta"] <= 1.0


def test_under_bf16_the_whitening_init_stays_fp32_as_on_the_gpu(anchors) -> None:
    """A bf16 patch covariance has negative eigenvalues (NaN stem, chance accuracy): the shim keeps it fp32."""
    from airbench import utils

    torch.manual_seed(0)
    images = torch.rand(512, 3, 32, 32) * 2 - 1
    expected = torch.nn.Conv2d(3, 24, 2)
    utils.init_whitening_conv(expected, images)
    original = utils.init_whitening_conv
    with anchors.cpu_shims(bf16=True) as shims:
        layer = torch.nn.Conv2d(3, 24, 2)
        utils.init_whitening_conv(layer, images)
        assert torch.is_autocast_enabled("cpu")  # training and evaluation still run under the autocast
    assert torch.isfinite(layer.weight).all()
    assert torch.allclose(layer.weight, expected.weight, rtol=1e-4, atol=1e-5)
    assert any("init_whitening_conv" in s for s in shims) and any("bf16 autocast" in s for s in shims)
    assert utils.init_whitening_conv is original and not torch.is_autocast_enabled("cpu")


def test_the_package_runs_bf16_with_amx_and_fp32_on_other_cpus(anchors, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's shim list: bf16 autocast where the CPU has AMX, fp32 elsewhere; --anchor-precision overrides."""
    for amx, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(anchors, "cpu_has_amx", lambda amx=amx: amx)
        assert anchors.anchor_precision(torch.device("cpu")) == expected
        assert anchors.anchor_precision(torch.device("cpu"), "fp32") == "fp32"
        assert anchors.anchor_precision(torch.device("cpu"), "bf16") == "bf16"
    assert anchors.anchor_precision(torch.device("cuda")) == "fp16"  # its own half-precision weights


def test_under_the_bf16_shim_every_forward_sees_the_weights_as_they_are_now(anchors) -> None:
    """One autocast spans the package's whole run, so its bf16 weight-cast cache must be off.

    With the cache on, a weight updated in place after the first forward is never seen again: the package's
    fp32 weights trained while its forward kept the first step's copies, and it stayed at chance (20% test).
    """
    layer, x = torch.nn.Linear(8, 4), torch.randn(16, 8)
    with anchors.cpu_shims(bf16=True):
        before = layer(x)  # grad mode on and a leaf weight that requires grad: what autocast would cache
        with torch.no_grad():
            layer.weight.add_(1.0)  # what optimizer.step() does
        after = layer(x)
        assert after.dtype == torch.bfloat16
    expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert not torch.allclose(after.float(), before.float())
    assert torch.allclose(after.float(), expected, rtol=2e-2, atol=5e-2)


def test_each_row_is_bracketed_by_the_hosts_pace_and_drift_is_flagged(anchors) -> None:
    cpu = torch.device("cpu")
    pace = anchors.host_speed(cpu, "fp32", seconds=0.1)
    assert math.isfinite(pace) and pace > 0
    calls = []
    row = anchors.with_host(lambda: calls.append("row") or {"row": "x", "seconds": 1.0}, cpu, "fp32")
    assert calls == ["row"] and row["row"] == "x" and row["host_before"] > 0 and row["host_after"] > 0
    level = [{"host_before": 10.0, "host_after": 10.5}, {"host_before": 10.2, "host_after": 9.8}]
    assert anchors.host_drift(level) == pytest.approx(10.5 / 9.8) and anchors.host_drift(level) < anchors.DRIFT_LIMIT
    drifting = level + [{"host_before": 20.0, "host_after": 24.0}]
    assert anchors.host_drift(drifting) == pytest.approx(24.0 / 9.8)
    assert anchors.host_drift([{"row": "old json, no pace"}]) == 1.0
    anchor = {"host_before": 10.0, "host_after": 10.0}
    assert anchors._pace({"host_before": 5.0, "host_after": 20.0}, anchor) == (
        "; host pace 0.50x -> 2.00x the anchor's")
