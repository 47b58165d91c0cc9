"""Helpers shared by the deploy tests: a tiny model, a bundle writer, test images.

Kept out of conftest.py so test modules can import them by a name no other
test folder uses.
"""

from __future__ import annotations

import contextlib
import io
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn
from prometheus_text import metric  # noqa: F401  (re-exported for the deploy tests)

from mlestar.data.dataset import Preprocessing
from mlestar.deploy import render_model_card, write_bundle
from mlestar.models import create_model

CLASS_NAMES = ["cat", "dog", "bird"]
PREPROCESSING = Preprocessing(image_size=8, channels=1, mean=(0.4,), std=(0.3,))
# The training statistics drift is scored against (the test bundle's reference.json).
REFERENCE = {"channel_mean": [0.4], "channel_std": [0.3], "class_frequencies": [0.5, 0.25, 0.25]}


def brightness_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 8x8 grayscale images whose class is their brightness: dark, mid, bright.

    Returns ``(images (n, 8, 8), labels (n,))``; labels cycle 0, 1, 2.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centers = np.array([40.0, 128.0, 215.0])[labels]
    pixels = centers[:, None, None] + rng.normal(0.0, 20.0, size=(n, 8, 8))
    return pixels.clip(0, 255).astype(np.uint8), labels


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 8, 8)`` -> normalized float ``(N, 1, 8, 8)``, the way PREPROCESSING says."""
    pixels = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    return (pixels - PREPROCESSING.mean[0]) / PREPROCESSING.std[0]


def make_model(seed: int = 0) -> nn.Module:
    """small_cnn that tells dark, mid and bright images apart; in eval mode.

    Convolutions keep their random weights (with random BatchNorm statistics,
    so an exporter that mishandles BatchNorm cannot pass parity by accident);
    the linear head is fitted in closed form by least squares on the pooled
    features. That gives confident, varied predictions, so top-1 checks mean
    something, in milliseconds instead of a training loop.
    """
    torch.manual_seed(seed)
    model = create_model("small_cnn", num_classes=3, in_channels=1, image_size=8, width=8).eval()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    images, labels = brightness_images(300, seed)
    with torch.no_grad():
        features = model.pool(model.features(normalize(images))).flatten(1)
        design = torch.cat([features, torch.ones(len(features), 1)], dim=1)
        targets = nn.functional.one_hot(torch.from_numpy(labels), 3).float() * 6.0 - 3.0
        solution = torch.linalg.lstsq(design, targets).solution
        model.head.weight.copy_(solution[:-1].T)
        model.head.bias.copy_(solution[-1])
    return model


def bundle_metadata() -> dict[str, object]:
    return {"run_id": "run-0001", "model_name": "small_cnn", "version": "1.2.3",
            "metrics": {"test_accuracy": 0.95}}


def write_test_bundle(out_dir: Path, export_dir: Path, formats: tuple[str, ...] = ("torchscript", "onnx"),
                      **options: Any) -> Path:
    """A bundle of the exports in ``export_dir`` with the drift reference; ``options`` go to write_bundle."""
    files = {"torchscript": export_dir / "model.ts", "onnx": export_dir / "model.onnx"}
    options.setdefault("extra_files", {"reference.json": REFERENCE})
    card = render_model_card(project="pets", run_id="run-0001", model_name="small_cnn", dataset="pets-8px",
                             metrics={"test_accuracy": 0.95}, targets={"test_accuracy": 0.9},
                             preprocessing=PREPROCESSING, environment={"torch": torch.__version__},
                             limits=["8x8 grayscale only"])
    return write_bundle(out_dir, model_files={f: files[f] for f in formats}, class_names=CLASS_NAMES,
                        preprocessing=PREPROCESSING, metadata=bundle_metadata(), model_card=card, **options)


def pattern(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """A deterministic uint8 image array (H, W, C) with structure, not noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = (np.sin(xs * rng.uniform(0.2, 1.0)) + np.cos(ys * rng.uniform(0.2, 1.0)) + 2) * 63
    layers = [np.roll(base, shift=c * 2, axis=1) for c in range(channels)]
    return np.stack(layers, axis=-1).clip(0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """``image`` as a PNG (or ``fmt``) file."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def bright(size: int = 8) -> Image.Image:
    """A bright grayscale image: the test model calls it 'bird' (class 2)."""
    return Image.fromarray(brightness_images(3, seed=5)[0][2], mode="L").resize((size, size))


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` grayscale pixels, with a token of image data.

    A few dozen bytes that would decode to a huge image: the shape of a
    decompression bomb, built without ever allocating those pixels.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


@contextlib.contextmanager
def serving(app: Any, timeout: float = 60.0) -> Iterator[Any]:
    """A started TestClient for ``app``, returned once ``/ready`` says the warm-up is done.

    ``timeout`` only bounds a warm-up that never ends; a tiny model warms up in milliseconds.
    """
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        deadline = time.monotonic() + timeout
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the app did not become ready"
            time.sleep(0.01)
        yield client
