"""Training and serving see the same input: one image folder, loaded as the workflow loads it and served.

The awkward files (16-bit PNG, palette PNG with transparency, CMYK JPEG,
EXIF-rotated JPEG) are where two preprocessing copies used to disagree:
serving clipped 16-bit images at 255 while training kept their top byte.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
import numpy as np
import pytest
import torch
from deploy_helpers import bundle_metadata, encode, pattern, serving
from fastapi.testclient import TestClient
from PIL import Image

from mlestar.config.schema import DataConfig
from mlestar.data import load_dataset
from mlestar.data.dataset import ImageDataset
from mlestar.data.preprocess import preprocess_bytes
from mlestar.deploy import LoadedBundle, create_app, load_bundle, write_bundle
from mlestar.deploy.export import export_torchscript
from mlestar.models import create_model
from mlestar.training import split_to_tensors

SIDE = 12


def _sixteen_bit_png() -> bytes:
    """12x12 ``I;16`` gradient spanning 0..65535: 144 distinct values, nearly all above 255."""
    values = np.linspace(0, 65535, SIDE * SIDE).astype(np.uint16).reshape(SIDE, SIDE)
    return encode(Image.fromarray(values))


def _palette_png() -> bytes:
    palette = Image.fromarray(pattern(SIDE, SIDE, 3, seed=1)).quantize(colors=16)
    buffer = io.BytesIO()
    palette.save(buffer, "PNG", transparency=int(np.asarray(palette)[0, 0]))
    return buffer.getvalue()


def _cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(pattern(SIDE, SIDE, 3, seed=2)).convert("CMYK"), "JPEG")


def _rotated_jpeg() -> bytes:
    """Stored 16 wide x 10 high with EXIF orientation 6: upright it is 10 wide x 16 high."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pattern(10, 16, 3, seed=3)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


FILES = {"a/sixteen.png": _sixteen_bit_png, "a/palette.png": _palette_png, "b/cmyk.jpg": _cmyk_jpeg,
         "b/rotated.jpg": _rotated_jpeg,
         "a/plain.png": lambda: encode(Image.fromarray(pattern(SIDE, SIDE, 3, seed=4))),
         "b/plain.png": lambda: encode(Image.fromarray(pattern(SIDE, SIDE, 3, seed=5)))}


def _write_tree(root: Path) -> dict[str, bytes]:
    files = {name: make() for name, make in FILES.items()}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def _training_inputs(dataset: ImageDataset) -> dict[str, np.ndarray]:
    """Path -> the normalized tensor training and evaluation feed the model (``split_to_tensors``)."""
    prep = dataset.preprocessing()
    inputs = {}
    for split in (dataset.train, dataset.val, dataset.test):
        tensors, _ = split_to_tensors(split, prep, torch.device("cpu"))
        inputs.update(zip(split.paths, tensors.numpy()))
    return inputs


def _bundle(dataset: ImageDataset, folder: Path) -> LoadedBundle:
    """A real bundle of an untrained small_cnn for ``dataset``, loaded as ``mlestar serve`` loads it."""
    prep = dataset.preprocessing()
    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=dataset.num_classes, in_channels=prep.channels,
                         image_size=prep.image_size, width=4).eval()
    model_file = folder / "model.ts"
    export_torchscript(model, torch.zeros(2, prep.channels, prep.image_size, prep.image_size), model_file)
    write_bundle(folder / "bundle", model_files={"torchscript": model_file}, class_names=list(dataset.class_names),
                 preprocessing=prep, metadata=bundle_metadata(), model_card="# test\n")
    return load_bundle(folder / "bundle")


@dataclasses.dataclass(frozen=True)
class Setup:
    """The image files, the dataset loaded from them, and a bundle for that dataset."""

    files: dict[str, bytes]
    dataset: ImageDataset
    bundle: LoadedBundle


@pytest.fixture(params=[None, 1], ids=["auto-rgb", "gray"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    """``data.channels`` unset (a colour file makes it RGB) or 1 (every file converted to gray)."""
    files = _write_tree(tmp_path / "images")
    dataset = load_dataset(DataConfig(source="imagefolder", path=tmp_path / "images", channels=request.param), seed=0)
    return Setup(files, dataset, _bundle(dataset, tmp_path))


def _served_inputs(bundle: LoadedBundle, files: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Path -> the array the served model was called with for that file, posted to ``/predict``."""
    calls: list[np.ndarray] = []

    def recording(batch: np.ndarray) -> np.ndarray:
        calls.append(np.array(batch, copy=True))
        return bundle.runner(batch)

    served = {}
    with serving(create_app(dataclasses.replace(bundle, runner=recording))) as client:
        for name, data in files.items():
            calls.clear()  # drop the warm-up calls
            _predict(client, data)
            (batch,) = calls
            served[name] = batch[0]
    return served


def _predict(client: TestClient, data: bytes) -> None:
    response = client.post("/predict", files={"file": ("upload", data, "application/octet-stream")})
    assert response.status_code == 200, response.text


def test_the_files_are_the_awkward_kinds_they_claim(setup: Setup) -> None:
    dataset = setup.dataset
    assert dataset.report.original_modes == {"I;16": 1, "P": 1, "CMYK": 1, "RGB": 3}
    assert dataset.report.original_sizes == {"12x12": 5, "10x16": 1}  # the JPEG counted upright
    assert sorted(p for s in (dataset.train, dataset.val, dataset.test) for p in s.paths) == sorted(FILES)


def test_served_input_equals_the_training_input_bit_for_bit(setup: Setup) -> None:
    dataset, bundle, files = setup.dataset, setup.bundle, setup.files
    assert bundle.preprocessing == dataset.preprocessing()  # preprocessing.json round trip
    trained = _training_inputs(dataset)
    served = _served_inputs(bundle, files)
    for name in FILES:
        assert served[name].shape == (bundle.preprocessing.channels, SIDE, SIDE)
        np.testing.assert_array_equal(served[name], trained[name], err_msg=name)
        np.testing.assert_array_equal(preprocess_bytes(files[name], bundle.preprocessing), trained[name],
                                      err_msg=name)


def test_the_sixteen_bit_image_is_not_clipped_in_either_path(setup: Setup) -> None:
    dataset, bundle, files = setup.dataset, setup.bundle, setup.files
    trained = _training_inputs(dataset)["a/sixteen.png"]
    served = _served_inputs(bundle, {"a/sixteen.png": files["a/sixteen.png"]})["a/sixteen.png"]
    # 144 values from 0 to 65535 keep their top byte: 144 distinct levels; clipping at 255 would leave 2.
    assert len(np.unique(trained[0])) == len(np.unique(served[0])) == 144
