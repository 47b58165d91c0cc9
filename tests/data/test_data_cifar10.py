"""The cifar10 source on a fake ``cifar-10-batches-py`` folder in the real pickle format (no network)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from image_trees import write_fake_cifar
from mlestar.config.schema import DataConfig
from mlestar.data import data_fingerprint, load_dataset
from mlestar.data.cifar10 import read_batch
from mlestar.errors import DataError


def config(path: Path | None, **extra: object) -> DataConfig:
    return DataConfig(source="cifar10", path=path, **extra)


def test_fake_cifar_loads_with_shapes_labels_and_layout(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    ds = load_dataset(config(tmp_path), seed=0)
    assert ds.class_names[:3] == ("airplane", "automobile", "bird") and ds.num_classes == 10
    assert ds.image_shape == (32, 32, 3) and ds.train.images.dtype == np.uint8
    assert (len(ds.train), len(ds.val), len(ds.test)) == (40, 10, 10)  # 10% of 5 per class -> 1 per class
    assert ds.val.class_counts(10).tolist() == [1] * 10 and ds.test.class_counts(10).tolist() == [1] * 10
    for image, label in zip(ds.test.images, ds.test.labels):
        assert image[5, 5].tolist() == [label * 20, label * 20 + 1, label * 20 + 2]
    assert ds.report.original_sizes == {"32x32": 60} and ds.report.source["kind"] == "cifar10"
    assert "validation: a stratified 10% of train (seed 1)" in ds.notes


def test_batches_are_read_row_major_channel_first(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path)
    images, labels = read_batch(folder / "test_batch")
    assert images.shape == (10, 32, 32, 3) and labels.tolist() == list(range(10))
    assert [int(images[k, 0, 1, 0]) for k in range(10)] == list(range(10))  # channel 0, row 0, column 1


def test_path_may_name_the_batch_folder_itself(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path)
    assert len(load_dataset(config(folder), seed=0).test) == 10


def test_conversion_and_cap(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    ds = load_dataset(config(tmp_path, image_size=16, channels=1, max_per_class=2), seed=0)
    assert ds.image_shape == (16, 16, 1)
    assert ds.report.conversions == {"RGB->L": 60, "32x32->16x16": 60}
    assert ds.train.class_counts(10).max() == 2


def test_splits_follow_the_seed(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    a, b, c = (load_dataset(config(tmp_path), seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.val.images, b.val.images)
    assert not np.array_equal(a.val.images, c.val.images)


def test_absent_and_offline_is_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-10 is not in") as caught:
        load_dataset(config(tmp_path), seed=0)
    assert "data.download: true" in str(caught.value) and "imagefolder" in str(caught.value)
    with pytest.raises(DataError, match="CIFAR-10 is not in"):
        data_fingerprint(config(tmp_path))


def test_the_default_location_is_under_the_cache(private_cache: Path) -> None:
    write_fake_cifar(private_cache / "cifar10")
    assert len(load_dataset(config(None), seed=0).train) == 40


def fake_torchvision(monkeypatch: pytest.MonkeyPatch, on_download: object) -> list[dict[str, object]]:
    """Install a stand-in ``torchvision.datasets.CIFAR10`` that calls ``on_download(root)``."""
    calls: list[dict[str, object]] = []

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append({"root": root, "train": train, "download": download})
            on_download(Path(root))  # type: ignore[operator]

    datasets = types.ModuleType("torchvision.datasets")
    datasets.CIFAR10 = FakeCIFAR10  # type: ignore[attr-defined]
    package = types.ModuleType("torchvision")
    package.datasets = datasets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)
    return calls


def test_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_torchvision(monkeypatch, write_fake_cifar)
    before = data_fingerprint(config(tmp_path, download=True))  # absent: stands for the official release
    ds = load_dataset(config(tmp_path, download=True), seed=0)
    assert calls == [{"root": str(tmp_path), "train": True, "download": True}]
    assert len(ds.test) == 10 and ds.fingerprint != before
    load_dataset(config(tmp_path, download=True), seed=0)
    assert len(calls) == 1  # present now: no second download


def test_a_failed_download_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(root: Path) -> None:
        raise URLError("no network")

    fake_torchvision(monkeypatch, offline)
    with pytest.raises(DataError, match="could not download CIFAR-10"):
        load_dataset(config(tmp_path, download=True), seed=0)


def test_a_file_that_is_not_a_batch_is_a_data_error(tmp_path: Path) -> None:
    folder = write_fake_cifar(tmp_path)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read .*data_batch_3"):
        load_dataset(config(tmp_path), seed=0)
