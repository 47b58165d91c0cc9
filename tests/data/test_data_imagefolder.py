"""The imagefolder source over a folder and each archive kind: layout, skips, conversions, splits, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from image_trees import (MESSY_CLASSES, MESSY_CONVERSIONS, MESSY_CONVERTED, MESSY_MODES, MESSY_SIZES, MESSY_SKIPPED,
                        MESSY_TEST_COUNTS, MESSY_TRAIN_COUNTS, archive, put, rgb_png, write_flat_tree,
                        write_messy_tree)
from mlestar.config.schema import DataConfig
from mlestar.data import load_dataset
from mlestar.data.imagefolder import decode_folder
from mlestar.errors import DataError

KINDS = ["directory", "tar", "tar.gz", "tgz", "tar.bz2", "tar.xz", "zip"]


def source_path(tmp_path: Path, kind: str, tree: Path) -> Path:
    """``tree`` itself for ``"directory"``, else an archive of it with that suffix."""
    return tree if kind == "directory" else archive(tree, tmp_path / f"data.{kind}")


def config(path: Path, **extra: object) -> DataConfig:
    return DataConfig(source="imagefolder", path=path, **extra)


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    return write_messy_tree(tmp_path / "tree")


def test_converted_files_are_named_up_to_a_cap_and_counted_in_full(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from image_trees import encode, pixels
    from mlestar.data import imagefolder

    monkeypatch.setattr(imagefolder, "LISTED_FILES", 2)
    for i in range(3):
        put(tmp_path, f"t/train/gray/{i}.png", encode(Image.fromarray(pixels(i)[..., 0], "L"), "PNG"))
        put(tmp_path, f"t/train/rgb/{i}.png", rgb_png(10 + i))
    report = decode_folder(config(tmp_path / "t")).report
    assert report.conversions == {"L->RGB": 3}
    assert report.converted == {"L->RGB": ["train/gray/0.png", "train/gray/1.png"]}


@pytest.mark.parametrize("kind", KINDS)
def test_messy_tree_loads_the_same_from_every_kind(tmp_path: Path, messy: Path, kind: str) -> None:
    ds = load_dataset(config(source_path(tmp_path, kind, messy)), seed=0)
    report = ds.report
    assert [(s.path, s.reason) for s in report.skipped] == MESSY_SKIPPED
    assert ds.class_names == MESSY_CLASSES
    assert report.conversions == MESSY_CONVERSIONS
    assert report.converted == MESSY_CONVERTED  # paths as written under data.path, wrapper folder included
    assert report.original_sizes == MESSY_SIZES
    assert report.original_modes == MESSY_MODES
    assert report.empty_classes == {"train": ["empty"]}
    assert report.source["kind"] == ("tar" if kind.startswith("t") else kind)
    assert ds.image_shape == (12, 12, 3)
    assert ds.test.class_counts(3).tolist() == MESSY_TEST_COUNTS
    assert (ds.train.class_counts(3) + ds.val.class_counts(3)).tolist() == MESSY_TRAIN_COUNTS
    assert len(ds.val) == 3 and len(ds.train) == 13  # one validation image per class (10%, at least one)
    assert "stepped into the single top-level folder ds/" in ds.notes


def test_every_kind_gives_identical_arrays(tmp_path: Path, messy: Path) -> None:
    loads = [decode_folder(config(source_path(tmp_path, kind, messy))) for kind in ("directory", "tar.gz", "zip")]
    for other in loads[1:]:
        for split in ("train", "test"):
            assert other.splits[split].paths == loads[0].splits[split].paths
            np.testing.assert_array_equal(other.splits[split].images, loads[0].splits[split].images)
            np.testing.assert_array_equal(other.splits[split].labels, loads[0].splits[split].labels)


def test_paths_name_split_and_class_and_labels_follow_class_order(messy: Path) -> None:
    decoded = decode_folder(config(messy))
    test = decoded.splits["test"]
    assert test.paths == ("ds/test/cat/t0.png", "ds/test/cat/t1.png", "ds/test/dog/t0.jpg",
                          "ds/test/dog/t1.jpg", "ds/test/fish/t0.png", "ds/test/fish/t1.png")
    assert test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    train_paths = decoded.splits["train"].paths
    assert "ds/train/cat/rgba.png" in train_paths and "ds/train/dog/big.png" in train_paths


def test_without_a_test_folder_a_seeded_stratified_test_split_is_made(tmp_path: Path) -> None:
    tree = write_messy_tree(tmp_path / "tree", with_test=False)
    ds = load_dataset(config(tree), seed=0)
    assert ds.test.class_counts(3).tolist() == [1, 1, 1]  # 20% of 5, 6, 5 rounds to 1 each
    assert ds.val.class_counts(3).tolist() == [1, 1, 1]
    assert ds.train.class_counts(3).tolist() == [3, 4, 3]
    assert any(note.startswith("no test split in the source") for note in ds.notes)
    assert not set(ds.train.paths) & set(ds.val.paths) | set(ds.train.paths) & set(ds.test.paths)


def test_splits_are_deterministic_per_seed(tmp_path: Path) -> None:
    tree = write_flat_tree(tmp_path / "flat", {"a": 10, "b": 10})
    first, again, other = (load_dataset(config(tree), seed=s) for s in (3, 3, 4))
    assert first.val.paths == again.val.paths and first.test.paths == again.test.paths
    assert first.val.paths != other.val.paths or first.test.paths != other.test.paths
    assert "no split folders: every class folder is training data" in first.notes


def test_a_valid_folder_is_the_validation_split(tmp_path: Path, messy: Path) -> None:
    for cls in MESSY_CLASSES:
        put(messy, f"ds/valid/{cls}/v.png", rgb_png(70))
    ds = load_dataset(config(messy), seed=0)
    assert ds.val.paths == ("ds/valid/cat/v.png", "ds/valid/dog/v.png", "ds/valid/fish/v.png")
    assert len(ds.train) == sum(MESSY_TRAIN_COUNTS)
    assert "validation: the valid/ folder (3 images)" in ds.notes


def test_image_size_and_channels_settings_convert_every_image(messy: Path) -> None:
    ds = load_dataset(config(messy, image_size=16, channels=1), seed=0)
    assert ds.image_shape == (16, 16, 1)
    assert ds.report.conversions == {"RGB->L": 19, "RGBA->L": 1, "P->L": 1, "12x12->16x16": 21,
                                     "20x16->16x16": 1}


def test_grayscale_only_data_gets_one_channel(tmp_path: Path) -> None:
    tree = write_flat_tree(tmp_path / "gray", {"a": 3, "b": 3}, mode="L")
    ds = load_dataset(config(tree), seed=0)
    assert ds.image_shape == (12, 12, 1) and ds.report.conversions == {}


def test_max_per_class_caps_training_images(tmp_path: Path) -> None:
    tree = write_flat_tree(tmp_path / "flat", {"a": 12, "b": 12})
    ds = load_dataset(config(tree, max_per_class=3), seed=0)
    assert ds.train.class_counts(2).tolist() == [3, 3]
    assert len(ds.test) == 4 and len(ds.val) == 2  # 20% then 10% of 12 per class; caps touch training only


def test_the_pool_and_the_serial_path_agree(messy: Path) -> None:
    serial = decode_folder(config(messy), workers=1)
    pooled = decode_folder(config(messy), workers=2, chunk=3)
    assert pooled.report == serial.report
    np.testing.assert_array_equal(pooled.splits["train"].images, serial.splits["train"].images)


def test_a_class_only_in_test_is_an_error(messy: Path) -> None:
    put(messy, "ds/test/bird/b.png", rgb_png(80))
    with pytest.raises(DataError, match=r"class 'bird' has images in the test/ split .* no training images"):
        load_dataset(config(messy), seed=0)


def test_a_corrupt_archive_is_an_error(tmp_path: Path) -> None:
    for name in ("data.tar.gz", "data.zip", "data.tar"):
        put(tmp_path, name, b"definitely not an archive" * 40)
        with pytest.raises(DataError, match="is not a readable tar/zip archive"):
            load_dataset(config(tmp_path / name), seed=0)


@pytest.mark.parametrize("name", ["dot.tar.gz", "dot.zip"])
def test_dot_slash_names_and_missing_folder_entries_are_handled(tmp_path: Path, messy: Path, name: str) -> None:
    packed = archive(messy, tmp_path / name, prefix="./", folders=False)
    ds = load_dataset(config(packed), seed=0)
    assert [(s.path, s.reason) for s in ds.report.skipped] == MESSY_SKIPPED
    assert ds.class_names == MESSY_CLASSES
    assert ds.report.empty_classes == {}  # an empty folder without a folder entry leaves no trace


def test_a_truncated_archive_is_an_error(tmp_path: Path, messy: Path) -> None:
    packed = archive(messy, tmp_path / "data.tar.gz")
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(DataError, match="is not a readable tar/zip archive"):
        load_dataset(config(packed), seed=0)


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(config(tmp_path / "nowhere"), seed=0)


def test_a_plain_file_is_an_error(tmp_path: Path) -> None:
    put(tmp_path, "images.csv", b"a,b\n")
    with pytest.raises(DataError, match="not a .tar, .tar.gz, .tgz or .zip archive"):
        load_dataset(config(tmp_path / "images.csv"), seed=0)


def test_no_class_folders_is_an_error(tmp_path: Path) -> None:
    put(tmp_path / "loose", "a.png", rgb_png(1))
    with pytest.raises(DataError, match="no class folders"):
        load_dataset(config(tmp_path / "loose"), seed=0)


def test_no_usable_images_is_an_error(tmp_path: Path) -> None:
    put(tmp_path / "bad", "cat/a.txt", b"x")
    put(tmp_path / "bad", "dog/b.jpg", b"")
    with pytest.raises(DataError, match=r"no usable images .*1 not an image, 1 zero-byte"):
        load_dataset(config(tmp_path / "bad"), seed=0)


def test_split_folders_without_train_is_an_error(tmp_path: Path, messy: Path) -> None:
    shutil.rmtree(messy / "ds/train")
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(config(messy), seed=0)


def test_two_validation_folders_is_an_error(messy: Path) -> None:
    put(messy, "ds/val/cat/v.png", rgb_png(1))
    put(messy, "ds/validation/cat/v.png", rgb_png(2))
    with pytest.raises(DataError, match="several folders for one split: val, validation"):
        load_dataset(config(messy), seed=0)
