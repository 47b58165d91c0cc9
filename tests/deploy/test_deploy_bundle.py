"""Bundles: writing, checksum verification, loading, prediction, model cards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_helpers import (CLASS_NAMES, PREPROCESSING, brightness_images, bundle_metadata, normalize, pattern,
                            write_test_bundle)
from PIL import Image
from torch import nn

from mlestar.data.dataset import Preprocessing
from mlestar.deploy import (LoadedBundle, image_pixels, load_bundle, normalize_pixels, preprocess_image,
                            render_model_card, verify_bundle, write_bundle)
from mlestar.errors import BundleError
from mlestar.utils.io import read_json, sha256_file

BUNDLE_FILES = {"labels.json", "manifest.json", "metadata.json", "model.onnx", "model.ts", "model_card.md",
                "preprocessing.json", "reference.json"}


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def _gray_images(n: int, seed: int = 7) -> list[Image.Image]:
    """Dark, mid, bright, dark, ... 8x8 grayscale images."""
    return [Image.fromarray(array, mode="L") for array in brightness_images(n, seed)[0]]


def _torch_top1(model: nn.Module, images: list[Image.Image]) -> list[int]:
    """Top-1 computed without the bundle's code: pixels / 255, normalize, run the model."""
    batch = normalize(np.stack([np.asarray(image) for image in images]))
    with torch.inference_mode():
        return model(batch).argmax(dim=1).tolist()


# --------------------------------------------------------------------------- writing and verifying


def test_bundle_holds_every_file_and_a_matching_manifest(bundle_dir: Path) -> None:
    assert {p.name for p in bundle_dir.iterdir()} == BUNDLE_FILES
    manifest = verify_bundle(bundle_dir)
    assert set(manifest) == BUNDLE_FILES - {"manifest.json"}
    for name, entry in manifest.items():
        assert entry == {"sha256": sha256_file(bundle_dir / name), "size": (bundle_dir / name).stat().st_size}


def test_bundle_json_files_hold_what_was_given(bundle_dir: Path) -> None:
    assert read_json(bundle_dir / "labels.json") == CLASS_NAMES
    assert Preprocessing.from_dict(read_json(bundle_dir / "preprocessing.json")) == PREPROCESSING
    metadata = read_json(bundle_dir / "metadata.json")
    assert {k: metadata[k] for k in bundle_metadata()} == bundle_metadata()
    assert metadata["formats"] == ["onnx", "torchscript"]
    assert metadata["created"].endswith("+00:00")  # UTC, ISO 8601


def test_rewriting_with_fewer_formats_removes_the_stale_model(export_dir: Path, tmp_path: Path) -> None:
    out = write_test_bundle(tmp_path / "b", export_dir)
    write_test_bundle(out, export_dir, formats=("torchscript",))
    assert not (out / "model.onnx").exists()
    assert "model.onnx" not in verify_bundle(out)
    with pytest.raises(BundleError, match="has no onnx model") as caught:
        load_bundle(out, runtime="onnx")
    assert "runtime='torchscript'" in (caught.value.hint or "")


@pytest.mark.parametrize("name", ["labels.json", "model.ts", "model.onnx", "preprocessing.json"])
def test_an_edited_file_refuses_to_load_naming_the_file(bundle_dir: Path, tmp_path: Path, name: str) -> None:
    bundle = _copy(bundle_dir, tmp_path)
    with open(bundle / name, "ab") as fh:
        fh.write(b" ")
    with pytest.raises(BundleError, match=f"bundle file .*{name} does not match its checksum") as caught:
        load_bundle(bundle)
    assert "mlestar run --from deployment" in (caught.value.hint or "")


def test_a_same_size_edit_is_caught_by_the_checksum(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = _copy(bundle_dir, tmp_path)
    (bundle / "labels.json").write_text(json.dumps(["dog", "cat", "bird"], indent=2, sort_keys=True) + "\n")
    assert (bundle / "labels.json").stat().st_size == (bundle_dir / "labels.json").stat().st_size
    with pytest.raises(BundleError, match="labels.json does not match"):
        verify_bundle(bundle)


def test_a_missing_file_is_named(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = _copy(bundle_dir, tmp_path)
    (bundle / "model_card.md").unlink()
    with pytest.raises(BundleError, match="model_card.md is missing"):
        verify_bundle(bundle)


def test_a_folder_without_manifest_is_not_a_bundle(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = _copy(bundle_dir, tmp_path)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="has no manifest.json"):
        load_bundle(bundle)


def test_a_manifest_pointing_outside_the_bundle_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    bundle = _copy(bundle_dir, tmp_path)
    manifest = read_json(bundle / "manifest.json")
    manifest["../secret"] = {"sha256": "0" * 64, "size": 1}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_bundle(bundle)


def test_write_bundle_checks_its_inputs(export_dir: Path, tmp_path: Path) -> None:
    ok = {"model_files": {"torchscript": export_dir / "model.ts"}, "class_names": CLASS_NAMES,
          "preprocessing": PREPROCESSING, "metadata": bundle_metadata(), "model_card": "# card"}
    with pytest.raises(BundleError, match="metadata lacks version"):
        write_bundle(tmp_path, **{**ok, "metadata": {"run_id": "r", "model_name": "m"}})
    with pytest.raises(BundleError, match="unknown model format 'tflite'"):
        write_bundle(tmp_path, **{**ok, "model_files": {"tflite": export_dir / "model.ts"}})
    with pytest.raises(BundleError, match="does not exist"):
        write_bundle(tmp_path, **{**ok, "model_files": {"onnx": tmp_path / "nope.onnx"}})
    with pytest.raises(BundleError, match="needs class names"):
        write_bundle(tmp_path, **{**ok, "class_names": []})
    assert list(tmp_path.iterdir()) == []  # nothing written before the inputs were checked


def test_extra_files_are_written_by_type_and_checksummed(export_dir: Path, tmp_path: Path) -> None:
    extras = {"notes.json": {"a": [1, 2]}, "alerts.yml": "groups: []\n", "blob.bin": b"\x00\x01"}
    out = write_test_bundle(tmp_path / "b", export_dir, extra_files=extras)
    assert read_json(out / "notes.json") == {"a": [1, 2]}
    assert (out / "alerts.yml").read_text() == "groups: []\n" and (out / "blob.bin").read_bytes() == b"\x00\x01"
    assert {"notes.json", "alerts.yml", "blob.bin"} <= set(verify_bundle(out))
    (out / "alerts.yml").write_text("groups: [edited]\n")
    with pytest.raises(BundleError, match="alerts.yml does not match its checksum"):
        load_bundle(out)


@pytest.mark.parametrize("name", ["model.ts", "manifest.json", "labels.json", "../up.json", "sub/x.json", ".hidden"])
def test_extra_files_may_not_shadow_bundle_files_or_leave_the_folder(export_dir: Path, tmp_path: Path,
                                                                     name: str) -> None:
    with pytest.raises(BundleError, match="reserved or not a plain file name"):
        write_test_bundle(tmp_path / "b", export_dir, extra_files={name: {}})


def test_a_bundle_without_reference_loads_without_drift_reference(export_dir: Path, tmp_path: Path) -> None:
    out = write_test_bundle(tmp_path / "b", export_dir, extra_files={})
    assert load_bundle(out).reference is None


def test_a_stale_reference_not_in_the_manifest_is_never_read(export_dir: Path, tmp_path: Path) -> None:
    out = write_test_bundle(tmp_path / "b", export_dir)
    write_test_bundle(out, export_dir, extra_files={})  # rewritten without one: the old file stays, unlisted
    (out / "reference.json").write_text("not json")
    assert load_bundle(out).reference is None


def test_a_reference_of_the_wrong_shape_is_refused_at_load(export_dir: Path, tmp_path: Path) -> None:
    reference = {"channel_mean": [0.4], "channel_std": [0.3], "class_frequencies": [0.5, 0.5]}
    out = write_test_bundle(tmp_path / "b", export_dir, extra_files={"reference.json": reference})
    with pytest.raises(BundleError, match="reference.json describes 1 channels and 2 classes"):
        load_bundle(out)
    broken = write_test_bundle(tmp_path / "c", export_dir, extra_files={"reference.json": {"channel_mean": []}})
    with pytest.raises(BundleError, match="reference.json is malformed"):
        load_bundle(broken)


def test_default_runtime_comes_from_the_serving_metadata(export_dir: Path, tmp_path: Path) -> None:
    files = {"torchscript": export_dir / "model.ts", "onnx": export_dir / "model.onnx"}
    metadata = {**bundle_metadata(), "serving": {"runtime": "onnx"}}
    write_bundle(tmp_path, model_files=files, class_names=CLASS_NAMES, preprocessing=PREPROCESSING,
                 metadata=metadata, model_card="# card")
    assert load_bundle(tmp_path).runtime == "onnx"
    assert load_bundle(tmp_path, runtime="torchscript").runtime == "torchscript"


def test_labels_that_do_not_match_the_model_are_refused_at_load(export_dir: Path, tmp_path: Path) -> None:
    write_bundle(tmp_path, model_files={"torchscript": export_dir / "model.ts"}, class_names=["a", "b"],
                 preprocessing=PREPROCESSING, metadata=bundle_metadata(), model_card="# card")
    with pytest.raises(BundleError, match="the model has 3 outputs but labels.json names 2 classes"):
        load_bundle(tmp_path)


# --------------------------------------------------------------------------- loading and predicting


@pytest.mark.parametrize("runtime", ["torchscript", "onnx"])
def test_round_trip_predicts_the_torch_models_top1(bundle_dir: Path, model: nn.Module, runtime: str) -> None:
    bundle = load_bundle(bundle_dir, runtime=runtime)
    assert (bundle.runtime, bundle.model_name, bundle.version) == (runtime, "small_cnn", "1.2.3")
    assert bundle.class_names == tuple(CLASS_NAMES)
    images = _gray_images(12)
    predictions = bundle.predict(images)
    assert [p["index"] for p in predictions] == _torch_top1(model, images) == [0, 1, 2] * 4
    assert [p["label"] for p in predictions] == [CLASS_NAMES[p["index"]] for p in predictions]


def test_prediction_dict_is_consistent(loaded: LoadedBundle) -> None:
    (prediction,) = loaded.predict(_gray_images(1))
    probabilities = prediction["probabilities"]
    assert list(probabilities) == CLASS_NAMES
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction["confidence"] == probabilities[prediction["label"]] == max(probabilities.values())
    ranked = [entry["probability"] for entry in prediction["top_k"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) == 3
    assert prediction["top_k"][0] == {"label": prediction["label"], "index": prediction["index"],
                                      "probability": prediction["confidence"]}
    assert len(loaded.predict(_gray_images(1), top_k=2)[0]["top_k"]) == 2
    assert loaded.predict([]) == []


def test_torchscript_and_onnx_bundles_agree(bundle_dir: Path, loaded: LoadedBundle) -> None:
    images = _gray_images(6)
    onnx_predictions = load_bundle(bundle_dir, runtime="onnx").predict(images)
    for ts, ox in zip(loaded.predict(images), onnx_predictions):
        assert ts["index"] == ox["index"]
        assert np.allclose(list(ts["probabilities"].values()), list(ox["probabilities"].values()), atol=1e-5)


def test_unknown_runtime_suggests_one(bundle_dir: Path) -> None:
    with pytest.raises(BundleError, match="unknown runtime 'onnxx'; did you mean 'onnx'"):
        load_bundle(bundle_dir, runtime="onnxx")


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "1"])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_image_mode_becomes_the_expected_array(mode: str, channels: int) -> None:
    prep = Preprocessing(image_size=8, channels=channels, mean=(0.5,) * channels, std=(0.25,) * channels)
    image = Image.fromarray(pattern(10, 20, 3, seed=3), mode="RGB").convert(mode)
    array = preprocess_image(image, prep)
    assert array.shape == (channels, 8, 8) and array.dtype == np.float32
    assert -2.0 - 1e-6 <= array.min() and array.max() <= 2.0 + 1e-6  # (0..1 - 0.5) / 0.25


def test_preprocessing_normalizes_with_mean_and_std() -> None:
    prep = Preprocessing(image_size=4, channels=3, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    white = Image.new("RGB", (30, 30), (255, 255, 255))
    array = preprocess_image(white, prep)
    assert np.allclose(array[:, 0, 0], [1.0, 1.0, 0.0])
    assert np.allclose(array, array[:, :1, :1])  # a flat image stays flat after resizing


def test_pixels_before_normalization_are_what_drift_is_measured_on() -> None:
    prep = Preprocessing(image_size=4, channels=3, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    image = Image.new("RGB", (30, 30), (255, 51, 0))
    pixels = image_pixels(image, prep)
    assert pixels.shape == (3, 4, 4) and pixels.dtype == np.float32
    assert np.allclose(pixels[:, 0, 0], [1.0, 0.2, 0.0])
    assert np.allclose(normalize_pixels(pixels, prep), preprocess_image(image, prep))
    batch = normalize_pixels(np.stack([pixels, pixels]), prep)  # (N, C, H, W) works too
    assert batch.shape == (2, 3, 4, 4) and np.allclose(batch[1, :, 0, 0], [1.0, -0.6, -4.0])


def test_transparent_pixels_keep_their_colour_channels() -> None:
    """Alpha is dropped, not blended: a fully transparent red pixel reads as red."""
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    array = preprocess_image(rgba, Preprocessing(8, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert np.allclose(array[:, 0, 0], [1.0, 0.0, 0.0])


# --------------------------------------------------------------------------- model card


def test_model_card_states_metrics_against_targets() -> None:
    card = render_model_card(
        project="pets", run_id="run-42", model_name="small_cnn", dataset="pets-8px",
        metrics={"test_accuracy": 0.95, "latency_p95": 0.012, "macro_f1": 0.80, "model_size": 3 * 2**20},
        targets={"test_accuracy": 0.9, "latency_p95": 0.05, "macro_f1": 0.85, "throughput": 100.0},
        preprocessing=PREPROCESSING, environment={"torch": "2.14", "cpu": "x86 | 2 cores"},
        limits=["trained on 8x8 images only", "no out-of-distribution detection"],
    )
    for heading in ["# pets: small_cnn", "## Intended use", "## Data", "## Metrics", "## Limits",
                    "## Training environment", "## Reproduce"]:
        assert heading in card
    assert "| test_accuracy | 0.9500 | 0.9000 | yes |" in card
    assert "| latency_p95 | 12.00 ms | 50.00 ms | yes |" in card  # lower is better for latency
    assert "| macro_f1 | 0.8000 | 0.8500 | no |" in card
    assert "| model_size | 3.00 MiB | - | - |" in card
    assert "| throughput | not measured | 100 | no |" in card
    assert "- no out-of-distribution detection" in card
    assert "| cpu | x86 \\| 2 cores |" in card  # a pipe in a value does not break the table
    assert "run-42" in card and "pets-8px" in card and "mean (0.4000)" in card


def test_model_card_tolerates_unusual_metric_values() -> None:
    card = render_model_card(project="p", run_id="r", model_name="m", dataset="d",
                             metrics={"test_accuracy": None, "notes": "see report", "my_score": 3.14159},
                             targets={"my_score": 3.0}, preprocessing=PREPROCESSING, environment={},
                             limits=[])
    assert "| test_accuracy | not measured | - | - |" in card
    assert "| notes | see report | - | - |" in card
    assert "| my_score | 3.142 | 3 | ? |" in card  # not in the metric catalog: direction unknown
    assert "None recorded." in card and "Not recorded." in card
