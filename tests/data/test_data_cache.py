"""The decoded-image cache: hits, keys, location, and recovery from damaged entries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from image_trees import archive, put, rgb_png, write_messy_tree
from mlestar.config.schema import DataConfig
from mlestar.data import data_fingerprint, load_dataset
from mlestar.data.cache import cache_key, cache_root

SOURCE_KEYS = {"kind", "path", "cache", "key", "entry", "decode_seconds", "load_seconds"}


def config(path: Path, **extra: object) -> DataConfig:
    return DataConfig(source="imagefolder", path=path, **extra)


@pytest.fixture
def tgz(tmp_path: Path) -> Path:
    return archive(write_messy_tree(tmp_path / "tree"), tmp_path / "data.tar.gz")


def assert_same_splits(a: object, b: object) -> None:
    for split in ("train", "val", "test"):
        left, right = getattr(a, split), getattr(b, split)
        np.testing.assert_array_equal(left.images, right.images)
        np.testing.assert_array_equal(left.labels, right.labels)
        assert left.paths == right.paths


def test_second_load_is_a_hit_with_identical_data(tgz: Path) -> None:
    first = load_dataset(config(tgz), seed=0)
    second = load_dataset(config(tgz), seed=0)
    assert first.report.source["cache"] == "miss" and second.report.source["cache"] == "hit"
    assert set(second.report.source) == SOURCE_KEYS
    assert second.report.source["decode_seconds"] == first.report.source["decode_seconds"]
    assert_same_splits(first, second)
    assert second.report.skipped == first.report.skipped and second.class_names == first.class_names
    assert second.notes == first.notes


def test_seed_and_fractions_reuse_the_entry(tgz: Path) -> None:
    load_dataset(config(tgz), seed=0)
    again = load_dataset(config(tgz, val_fraction=0.3, test_fraction=0.3, max_per_class=2), seed=7)
    assert again.report.source["cache"] == "hit"


def test_conversion_settings_are_part_of_the_key(tgz: Path) -> None:
    load_dataset(config(tgz), seed=0)
    resized = load_dataset(config(tgz, image_size=8), seed=0)
    assert resized.report.source["cache"] == "miss" and resized.image_shape == (8, 8, 3)


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta", "remove"])
def test_a_damaged_entry_is_rebuilt(tgz: Path, damage: str) -> None:
    first = load_dataset(config(tgz), seed=0)
    entry = Path(str(first.report.source["entry"]))
    images = entry / "train.images.npy"
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(images.read_bytes())
        data[-1] ^= 0xFF
        images.write_bytes(bytes(data))
    elif damage == "meta":
        (entry / "meta.json").write_text("{not json")
    else:
        (entry / "test.labels.npy").unlink()
    rebuilt = load_dataset(config(tgz), seed=0)
    assert rebuilt.report.source["cache"] == "miss"
    assert any("was unreadable; rebuilt it" in note for note in rebuilt.notes)
    assert_same_splits(first, rebuilt)
    assert load_dataset(config(tgz), seed=0).report.source["cache"] == "hit"


def test_no_temporary_folders_are_left_behind(tgz: Path, private_cache: Path) -> None:
    load_dataset(config(tgz), seed=0)
    assert [p.name for p in private_cache.iterdir()] == [cache_key(config(tgz))]


def test_cache_location_precedence(tmp_path: Path, private_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_root(config(tmp_path)) == private_cache
    assert cache_root(config(tmp_path, cache_dir=tmp_path / "mine")) == tmp_path / "mine"
    monkeypatch.delenv("MLESTAR_CACHE_DIR")
    assert cache_root(config(tmp_path)) == Path.home() / ".cache" / "mlestar"


def test_fingerprint_is_the_cache_key_and_follows_folder_changes(tmp_path: Path) -> None:
    tree = write_messy_tree(tmp_path / "tree")
    ds = load_dataset(config(tree), seed=0)
    assert data_fingerprint(config(tree)) == ds.fingerprint == ds.report.source["key"]
    assert data_fingerprint(config(tree, channels=1)) != ds.fingerprint
    put(tree, "ds/train/cat/new.png", rgb_png(99))
    assert data_fingerprint(config(tree)) != ds.fingerprint
    reloaded = load_dataset(config(tree), seed=0)
    assert reloaded.report.source["cache"] == "miss" and "ds/train/cat/new.png" in reloaded.train.paths + \
        reloaded.val.paths


def test_folder_key_is_a_stat_key(tmp_path: Path) -> None:
    tree = write_messy_tree(tmp_path / "tree")
    key = cache_key(config(tree))
    image = tree / "ds/train/cat/c0.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache_key(config(tree)) != key  # touched: same bytes, new key (DVC-style stat hash)


def test_an_unwritable_cache_costs_speed_not_the_load(tgz: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should be")
    ds = load_dataset(config(tgz, cache_dir=blocker), seed=0)
    assert ds.report.source["cache"] == "miss"
    assert any("could not write the decoded-image cache" in note for note in ds.notes)
