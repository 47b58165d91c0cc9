"""Tiny image trees and a fake CIFAR-10 folder for the data tests, written under ``tmp_path``.

:func:`write_messy_tree` builds one split layout with every kind of problem the
image-folder loader must survive; ``MESSY_*`` hold what loading it must report.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 12  # every regular test image is 12x12

MESSY_SKIPPED = [  # (path relative to the root, reason), sorted by path
    ("ds/labels.csv", "not an image"),
    ("ds/train/.DS_Store", "not an image"),
    ("ds/train/cat/trunc.png", "truncated"),
    ("ds/train/cat/zero.jpg", "zero-byte"),
    ("ds/train/dog/notes.jpg", "unreadable"),
    ("ds/train/fish/readme.txt", "not an image"),
]
MESSY_CLASSES = ("cat", "dog", "fish")
MESSY_TRAIN_COUNTS = [5, 6, 5]  # per class, in the train/ folder, usable
MESSY_TEST_COUNTS = [2, 2, 2]
MESSY_CONVERSIONS = {"RGBA->RGB": 1, "L->RGB": 1, "P->RGB": 1, "20x16->12x12": 1}
MESSY_CONVERTED = {"RGBA->RGB": ["ds/train/cat/rgba.png"], "L->RGB": ["ds/train/dog/gray.png"],
                   "P->RGB": ["ds/train/fish/palette.png"], "20x16->12x12": ["ds/train/dog/big.png"]}
MESSY_SIZES = {"12x12": 21, "20x16": 1}
MESSY_MODES = {"RGB": 19, "RGBA": 1, "L": 1, "P": 1}


def pixels(seed: int, height: int = SIDE, width: int = SIDE, channels: int = 3) -> np.ndarray:
    """Deterministic random uint8 pixels ``(H, W, C)``."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` encoded as ``fmt`` ("PNG", "JPEG")."""
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def rgb_png(seed: int, height: int = SIDE, width: int = SIDE) -> bytes:
    return encode(Image.fromarray(pixels(seed, height, width)), "PNG")


def rgb_jpeg(seed: int) -> bytes:
    return encode(Image.fromarray(pixels(seed)), "JPEG")


def put(root: Path, name: str, data: bytes) -> None:
    """Write ``data`` to ``root/name``, creating folders."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_messy_tree(root: Path, *, with_test: bool = True) -> Path:
    """``root/ds/{train,test}/{cat,dog,fish}/...`` plus an empty class folder and six bad files.

    Returns ``root``. Without ``with_test`` there is no ``test/`` folder.
    """
    for i in range(4):
        put(root, f"ds/train/cat/c{i}.png", rgb_png(i))
        put(root, f"ds/train/dog/d{i}.jpg", rgb_jpeg(10 + i))
        put(root, f"ds/train/fish/f{i}.png", rgb_png(20 + i))
    put(root, "ds/train/cat/rgba.png", encode(Image.fromarray(pixels(30, channels=4), "RGBA"), "PNG"))
    put(root, "ds/train/dog/gray.png", encode(Image.fromarray(pixels(31, channels=1)[..., 0], "L"), "PNG"))
    put(root, "ds/train/dog/big.png", rgb_png(32, height=16, width=20))
    put(root, "ds/train/fish/palette.png", encode(Image.fromarray(pixels(33)).convert("P"), "PNG"))
    (root / "ds/train/empty").mkdir(parents=True)
    put(root, "ds/train/cat/zero.jpg", b"")
    put(root, "ds/train/cat/trunc.png", rgb_png(34)[:200])
    put(root, "ds/train/dog/notes.jpg", b"this is a text file, not a JPEG\n")
    put(root, "ds/train/fish/readme.txt", b"fish pictures\n")
    put(root, "ds/train/.DS_Store", b"\x00\x00\x00\x01Bud1")
    put(root, "ds/labels.csv", b"path,label\n")
    if with_test:
        for i in range(2):
            put(root, f"ds/test/cat/t{i}.png", rgb_png(40 + i))
            put(root, f"ds/test/dog/t{i}.jpg", rgb_jpeg(50 + i))
            put(root, f"ds/test/fish/t{i}.png", rgb_png(60 + i))
    return root


def write_flat_tree(root: Path, counts: dict[str, int], *, mode: str = "RGB") -> Path:
    """``root/<class>/<i>.png`` with ``counts[class]`` 12x12 images; returns ``root``."""
    for c, (cls, count) in enumerate(sorted(counts.items())):
        for i in range(count):
            image = Image.fromarray(pixels(100 * c + i)).convert(mode)
            put(root, f"{cls}/{i}.png", encode(image, "PNG"))
    return root


def archive(folder: Path, target: Path, *, prefix: str = "", folders: bool = True) -> Path:
    """Pack everything under ``folder`` (names relative to it, after ``prefix``) into ``target``.

    The kind follows ``target``'s suffix: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``,
    ``.tar.bz2`` or ``.tar.xz``. ``folders=False`` leaves folder entries out, as some zip tools do.
    """
    entries = [p for p in sorted(folder.rglob("*")) if folders or not p.is_dir()]
    if target.name.endswith(".zip"):
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in entries:
                name = prefix + path.relative_to(folder).as_posix()
                zf.writestr(name + "/" if path.is_dir() else name, b"" if path.is_dir() else path.read_bytes())
        return target
    compression = next((c for suffix, c in _TAR_MODES if target.name.endswith(suffix)), "")
    with tarfile.open(target, f"w:{compression}") as tar:
        for path in entries:
            tar.add(path, arcname=prefix + path.relative_to(folder).as_posix(), recursive=False)
    return target


_TAR_MODES = ((".tar.gz", "gz"), (".tgz", "gz"), (".tar.bz2", "bz2"), (".tar.xz", "xz"))


def write_fake_cifar(root: Path, *, per_batch: int = 10, test: int = 10) -> Path:
    """A ``root/cifar-10-batches-py`` folder in the pickle format of the real release.

    Image ``k`` of each batch has label ``k % 10`` and every pixel of channel
    ``c`` equal to ``(label * 20 + c) % 256``, except pixel (0, 1) of channel 0, which is
    the image's index in its batch (to check the row-major ``3 x 32 x 32`` layout).
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, count in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test)]:
        labels = [k % 10 for k in range(count)]
        data = np.zeros((count, 3, 32, 32), dtype=np.uint8)
        for k, label in enumerate(labels):
            for c in range(3):
                data[k, c] = (label * 20 + c) % 256
            data[k, 0, 0, 1] = k
        _pickle(folder / name, {"batch_label": name, "labels": labels, "data": data.reshape(count, -1),
                                "filenames": [f"{name}_{k}.png" for k in range(count)]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072})
    return folder


def _pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)
