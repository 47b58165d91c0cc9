"""Stage 1 data analysis: statistics, exact and near duplicates, pHash, terciles, graded findings.

Every expectation is exact and comes from small hand-made datasets (8x8x3 images).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.fft import dctn

from mlestar.data import analysis
from mlestar.data.analysis import (
    NearDuplicates,
    analyze_dataset,
    area_resize_matrix,
    brightness_terciles,
    bucket,
    content_ids,
    exact_duplicates,
    findings,
    hamming,
    image_stats,
    near_constant,
    near_duplicates,
    perceptual_hashes,
)
from mlestar.data.dataset import ImageDataset, ImageSplit, LoadReport, SkippedFile

NAMES = ("cat", "dog", "<script>")


def textured(rng: np.random.Generator, n: int, size: int = 8) -> np.ndarray:
    """``n`` random RGB images: unrelated to each other, full of structure for pHash."""
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def make_dataset(train: np.ndarray, train_labels: list[int], test: np.ndarray, test_labels: list[int],
                 *, val: np.ndarray | None = None, val_labels: list[int] | None = None,
                 train_paths: bool = True, report: LoadReport | None = None,
                 class_names: tuple[str, ...] = NAMES) -> ImageDataset:
    """A dataset from arrays; train images get paths ``train/<class>/<i>.png``, test has none."""
    if val is None:  # three unrelated images, one per class
        val, val_labels = textured(np.random.default_rng(99), 3, train.shape[1]), [0, 1, 2]
    paths = tuple(f"train/{class_names[c]}/{i}.png" for i, c in enumerate(train_labels)) if train_paths else ()
    split = lambda x, y, p=(): ImageSplit(x, np.array(y, dtype=np.int64), p)  # noqa: E731
    return ImageDataset("hand", split(train, train_labels, paths), split(val, val_labels),
                        split(test, test_labels), class_names, "fp", report=report or LoadReport())


@pytest.fixture
def planted() -> ImageDataset:
    """12 train / 6 test images with every kind of duplicate planted.

    train[5] == train[2] and train[11] == train[7] (within train); test[1] ==
    train[3] (exact leak); test[4] is train[8] brightened by 6 with +-2 noise
    (near copy); the rest are unrelated random images.
    """
    rng = np.random.default_rng(7)
    train, test = textured(rng, 12), textured(rng, 6)
    train[5], train[11] = train[2], train[7]
    test[1] = train[3]
    noise = rng.integers(-2, 3, train[8].shape)
    test[4] = np.clip(train[8].astype(np.int16) + 6 + noise, 0, 255).astype(np.uint8)
    return make_dataset(train, [0, 1, 2] * 4, test, [0, 1, 2] * 2)


def analyse(dataset: ImageDataset, **thresholds: object) -> dict[str, dict]:
    """Findings of ``dataset`` keyed by code."""
    return {f["code"]: f for f in analyze_dataset(dataset, **thresholds)["findings"]}


# --- statistics --------------------------------------------------------------


def test_image_stats_exact_values() -> None:
    flat = np.zeros((1, 4, 4, 3), np.uint8) + np.array([10, 20, 30], np.uint8)
    checker = np.zeros((1, 4, 4, 3), np.uint8)
    checker[0, ::2, ::2] = checker[0, 1::2, 1::2] = 255
    stats = image_stats(ImageSplit(np.concatenate([flat, checker]), np.zeros(2, np.int64)))
    np.testing.assert_allclose(stats["brightness"], [0.299 * 10 + 0.587 * 20 + 0.114 * 30, 127.5], rtol=1e-6)
    np.testing.assert_allclose(stats["contrast"], [0.0, 127.5], atol=1e-4)
    np.testing.assert_allclose(stats["channel_means"], [[10, 20, 30], [127.5] * 3], rtol=1e-6)


def test_image_stats_gray_images_and_empty_split() -> None:
    gray = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    stats = image_stats(ImageSplit(gray, np.zeros(1, np.int64)))
    assert stats["brightness"][0] == pytest.approx(7.5)
    assert stats["contrast"][0] == pytest.approx(np.arange(16).std(), rel=1e-6)
    empty = image_stats(ImageSplit(gray[:0], np.zeros(0, np.int64)))
    assert empty["brightness"].shape == (0,) and empty["channel_means"].shape == (0, 1)


def test_image_stats_same_across_chunk_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    images = textured(np.random.default_rng(1), 50)
    split = ImageSplit(images, np.zeros(50, np.int64))
    whole = image_stats(split)
    monkeypatch.setattr(analysis, "_CHUNK_PIXELS", 64 * 7)  # 7 images per chunk, last chunk short
    chunked = image_stats(split)
    for key in whole:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-6)
    gray = images.astype(np.float64) @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(whole["contrast"], gray.reshape(50, -1).std(axis=1), rtol=1e-5)


def test_near_constant_finds_blank_images_by_index() -> None:
    rng = np.random.default_rng(2)
    images = textured(rng, 6)
    images[1] = 0
    images[4] = 128 + rng.integers(0, 2, images[4].shape).astype(np.uint8)  # std 0.5: still blank
    split = ImageSplit(images, np.zeros(6, np.int64))
    assert near_constant(split) == [1, 4]
    assert near_constant(split, threshold=0.1) == [1]
    assert near_constant(split, stats=image_stats(split)) == [1, 4]


def test_brightness_terciles_and_buckets() -> None:
    low, high = brightness_terciles({"brightness": np.arange(10.0)})
    assert (low, high) == pytest.approx((3.0, 6.0))
    edges = (3.0, 6.0)
    assert bucket(np.array([0.0, 2.9, 3.0, 5.9, 6.0, 255.0]), edges).tolist() == [0, 0, 1, 1, 2, 2]
    assert bucket(np.arange(9.0) + 0.5, edges).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError, match="no training images"):
        brightness_terciles({"brightness": np.zeros(0)})


# --- exact duplicates ----------------------------------------------------------


def test_exact_duplicates_groups_counts_and_leak_refs(planted: ImageDataset) -> None:
    dupes = exact_duplicates(planted)
    assert dupes["groups"]["train"] == [["train/<script>/2.png", "train/<script>/5.png"],
                                        ["train/dog/7.png", "train/<script>/11.png"]]
    assert dupes["within"] == {"train": 2, "val": 0, "test": 0}
    assert dupes["test_in_train"] == 1
    assert dupes["test_train_pairs"] == [("test[1]", "train/cat/3.png")]
    assert dupes["val_in_train"] == 0 and dupes["val_train_pairs"] == []


def test_exact_duplicates_count_every_extra_copy_and_name_first_train_copy() -> None:
    rng = np.random.default_rng(3)
    train, test = textured(rng, 5), textured(rng, 4)
    train[1] = train[3] = train[4] = train[0]  # one group of four: three extra copies
    test[0] = test[2] = train[0]  # two test images, both leaks, both pointing at train[0]
    dataset = make_dataset(train, [0] * 5, test, [0] * 4, train_paths=False)
    dupes = exact_duplicates(dataset)
    assert dupes["groups"]["train"] == [["train[0]", "train[1]", "train[3]", "train[4]"]]
    assert dupes["within"]["train"] == 3 and dupes["within"]["test"] == 1
    assert dupes["test_train_pairs"] == [("test[0]", "train[0]"), ("test[2]", "train[0]")]


def test_content_ids_ignore_images_of_another_shape() -> None:
    wide = np.zeros((1, 2, 8, 1), np.uint8)
    tall = np.zeros((1, 8, 2, 1), np.uint8)  # same 16 zero bytes, different image
    digests = [analysis.content_digests(x) for x in (wide, tall, wide.copy())]
    assert digests[0][0] != digests[1][0] and digests[0][0] == digests[2][0]


# --- perceptual hashes -----------------------------------------------------------


def reference_phash(image: np.ndarray) -> int:
    """The documented rule, step by step, with PIL's box resize and scipy's full dctn."""
    gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    small = np.asarray(Image.fromarray(gray.astype(np.float32), mode="F").resize((32, 32), Image.Resampling.BOX))
    block = dctn(small.astype(np.float64), type=2, norm="ortho")[:8, :8].ravel()
    ac = np.where(np.abs(block[1:]) < 1e-6, 0.0, block[1:])
    bits = np.zeros(64, bool)
    bits[1:] = ac > np.median(ac)
    return int("".join("1" if b else "0" for b in bits), 2)


@pytest.mark.parametrize("size", [8, 32, 64])
def test_phash_follows_the_documented_rule(size: int) -> None:
    # Blocky images: many coefficients are exactly 0 and the median is 0, so this also tests the tie rule.
    rng = np.random.default_rng(size)
    low = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2)
    assert perceptual_hashes(images).tolist() == [reference_phash(image) for image in images]


def test_area_resize_matrix_rows_sum_to_one_and_average_blocks() -> None:
    down = area_resize_matrix(6, 4)  # each output covers 1.5 input pixels
    np.testing.assert_allclose(down.sum(axis=1), 1.0)
    np.testing.assert_allclose(down[0], [2 / 3, 1 / 3, 0, 0, 0, 0])
    np.testing.assert_allclose(area_resize_matrix(4, 4), np.eye(4))


def test_phash_is_stable_and_separates_different_images() -> None:
    rng = np.random.default_rng(4)
    images = textured(rng, 5)
    hashes = perceptual_hashes(images)
    assert hashes.dtype == np.uint64
    assert perceptual_hashes(images[2:3])[0] == hashes[2]  # independent of the batch around it
    assert perceptual_hashes(images).tolist() == hashes.tolist()
    assert hamming(hashes[0], hashes[1]) >= 16  # unrelated images: about 32 of 63 bits differ
    assert perceptual_hashes(np.full((2, 8, 8, 3), 77, np.uint8)).tolist() == [0, 0]  # flat -> 0


def test_phash_ignores_brightness_shift() -> None:
    image = textured(np.random.default_rng(5), 1) // 2
    brighter = image + 40  # no clipping: a pure brightness shift only moves the DC term
    assert perceptual_hashes(image)[0] == perceptual_hashes(brighter)[0]


# --- near duplicates -------------------------------------------------------------


def test_near_duplicates_find_the_noised_copy_only(planted: ImageDataset) -> None:
    ids = content_ids(planted)
    train_h, test_h = perceptual_hashes(planted.train.images), perceptual_hashes(planted.test.images)
    near = near_duplicates(train_h, test_h, 4, train_ids=ids["train"], test_ids=ids["test"])
    assert [(t, r) for t, r, _ in near.pairs] == [(4, 8)]  # the exact leak test[1]/train[3] is left out
    assert 0 <= near.pairs[0][2] <= 4
    assert near.pairs[0][2] == hamming(train_h[8], test_h[4])
    assert near.skipped_comparisons == 0
    without_ids = near_duplicates(train_h, test_h, 4)
    assert [(t, r) for t, r, _ in without_ids.pairs] == [(1, 3), (4, 8)]


def brute_force(train: np.ndarray, test: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """All-pairs reference."""
    dist = hamming(test[:, None], train[None, :])
    t, r = np.nonzero(dist <= max_distance)
    return sorted((int(a), int(b), int(dist[a, b])) for a, b in zip(t, r))


@pytest.mark.parametrize("max_distance", [0, 2, 4, 7])
def test_near_duplicates_equal_brute_force(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    train = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    test = rng.integers(0, 2**63, 200, dtype=np.int64).astype(np.uint64)
    for i in range(60):  # plant copies with 0..9 flipped bits, some across chunk borders
        bits = rng.choice(64, size=i % 10, replace=False)
        test[i] = train[i * 3] ^ np.uint64(sum(1 << int(b) for b in bits))
    test[60:63] = train[0]  # several tests sharing one train hash
    near = near_duplicates(train, test, max_distance)
    expected = brute_force(train, test, max_distance)
    assert sorted(near.pairs) == expected and near.found == len(expected)
    assert near.pairs == sorted(near.pairs, key=lambda p: (p[0], p[2], p[1]))


def test_near_duplicates_cap_skips_crowded_buckets_and_counts_them() -> None:
    train = np.zeros(30, np.uint64)  # 30 blank images: one crowded bucket in every chunk
    test = np.array([0, 1, 2**40], np.uint64)
    near = near_duplicates(train, test, 4, max_bucket=10)
    assert near.pairs == [] and near.found == 0 and near.compared == 0
    # test 0 hits the full bucket in 5 chunks, tests 1 and 2 in 4 of them: 30 * (5 + 4 + 4)
    assert near.skipped_comparisons == 30 * 13
    assert near.skipped_buckets == 5
    uncapped = near_duplicates(train, test, 4, max_bucket=30)
    assert uncapped.found == 90 and uncapped.skipped_comparisons == 0


def test_near_duplicates_keep_the_closest_when_truncated() -> None:
    train = np.array([0b1, 0b11, 0b111, 0b1111], np.uint64)
    near = near_duplicates(train, np.zeros(2, np.uint64), 4, max_pairs=3)
    assert near.found == 8
    assert near.pairs == [(0, 0, 1), (0, 1, 2), (1, 0, 1)]


def test_near_duplicates_edge_cases() -> None:
    empty = near_duplicates(np.zeros(0, np.uint64), np.zeros(3, np.uint64))
    assert empty == NearDuplicates(pairs=[], max_distance=4)
    assert empty.to_dict()["pairs"] == []
    with pytest.raises(ValueError, match="0..63"):
        near_duplicates(np.zeros(1, np.uint64), np.zeros(1, np.uint64), 64)


# --- graded findings -------------------------------------------------------------


def balanced(rng: np.random.Generator, n_train: int = 60, n_test: int = 30) -> tuple[np.ndarray, ...]:
    """Unrelated train and test images with 20 / 10 per class over three classes."""
    return textured(rng, n_train), textured(rng, n_test)


def labels(n: int) -> list[int]:
    return [i % 3 for i in range(n)]


def test_clean_dataset_has_only_the_balance_note() -> None:
    train, test = balanced(np.random.default_rng(10))
    found = analyze_dataset(make_dataset(train, labels(60), test, labels(30)))["findings"]
    assert [(f["grade"], f["code"], f["count"]) for f in found] == [("info", "class_imbalance", 0)]


def test_findings_on_the_planted_dataset(planted: ImageDataset) -> None:
    found = analyse(planted)
    assert found["leakage_test"]["grade"] == "blocking"  # 1 of 6 test images = 17%
    assert found["leakage_test"]["items"] == ["test[1]"] and found["leakage_test"]["count"] == 1
    assert found["near_duplicate_leakage"]["grade"] == "warning"
    assert found["near_duplicate_leakage"]["items"] == ["test[4]"]
    assert found["duplicates_train"]["grade"] == "warning"  # 2 of 12 > 1%
    assert found["duplicates_train"]["items"] == ["train/<script>/5.png", "train/<script>/11.png"]
    assert found["tiny_classes"]["grade"] == "warning" and found["tiny_classes"]["count"] == 3
    grades = [f["grade"] for f in analyze_dataset(planted)["findings"]]
    assert grades == sorted(grades, key=["blocking", "warning", "info"].index)


@pytest.mark.parametrize(("leaks", "grade"), [(1, "warning"), (2, "warning"), (3, "blocking")])
def test_leakage_blocks_above_five_percent(leaks: int, grade: str) -> None:
    train, test = balanced(np.random.default_rng(11), n_test=40)
    test[:leaks] = train[:leaks]  # 2.5%, 5% (not above), 7.5% of 40
    found = analyse(make_dataset(train, labels(60), test, labels(40)))
    assert (found["leakage_test"]["grade"], found["leakage_test"]["count"]) == (grade, leaks)


def test_six_percent_leakage_is_blocking_and_threshold_is_adjustable() -> None:
    train, test = balanced(np.random.default_rng(12), n_test=50)
    test[:3] = train[10:13]  # 3 of 50 = 6%
    dataset = make_dataset(train, labels(60), test, labels(50))
    assert analyse(dataset)["leakage_test"]["grade"] == "blocking"
    assert analyse(dataset, leakage_block_fraction=0.10)["leakage_test"]["grade"] == "warning"


def test_val_leakage_is_a_warning() -> None:
    train, test = balanced(np.random.default_rng(13))
    val = textured(np.random.default_rng(14), 6)
    val[2] = train[0]
    found = analyse(make_dataset(train, labels(60), test, labels(30), val=val, val_labels=labels(6)))
    assert (found["leakage_val"]["grade"], found["leakage_val"]["items"]) == ("warning", ["val[2]"])


def test_missing_classes_block_in_train_and_warn_in_test() -> None:
    train, test = balanced(np.random.default_rng(15))
    train_labels = [i % 2 for i in range(60)]  # "<script>" never in train
    test_labels = [0] * 30  # "dog" and "<script>" never in test
    found = analyse(make_dataset(train, train_labels, test, test_labels))
    assert (found["missing_classes_train"]["grade"], found["missing_classes_train"]["items"]) == \
        ("blocking", ["<script>"])
    assert (found["missing_classes_test"]["grade"], found["missing_classes_test"]["count"]) == ("warning", 2)
    assert "missing_classes_val" not in found


def test_empty_val_split_is_a_warning() -> None:
    train, test = balanced(np.random.default_rng(22))
    found = analyse(make_dataset(train, labels(60), test, labels(30), val=train[:0], val_labels=[]))
    assert found["empty_split_val"]["grade"] == "warning" and "missing_classes_val" not in found


def test_imbalance_warns_above_one_and_a_half() -> None:
    train, test = balanced(np.random.default_rng(16))
    imbalanced = [0] * 30 + [1] * 20 + [2] * 10  # ratio 3; dog (20) is not under 30 / 1.5
    found = analyse(make_dataset(train, imbalanced, test, labels(30)))
    assert found["class_imbalance"]["grade"] == "warning"
    assert found["class_imbalance"]["items"] == ["<script>"]
    assert "3.00" in found["class_imbalance"]["message"]
    even = [0] * 24 + [1] * 20 + [2] * 16  # ratio 1.5: not above
    assert analyse(make_dataset(train, even, test, labels(30)))["class_imbalance"]["grade"] == "info"


@pytest.mark.parametrize(("skipped", "grade"), [(6, "warning"), (7, "warning"), (8, "blocking")])
def test_skipped_files_block_above_ten_percent(skipped: int, grade: str) -> None:
    train, test = balanced(np.random.default_rng(17), n_test=0)
    report = LoadReport(skipped=tuple(SkippedFile(f"bad/{i}.png", "zero-byte" if i % 2 else "truncated")
                                      for i in range(skipped)))
    found = analyse(make_dataset(train, labels(60), test, [], report=report))
    # of 63 loaded images (60 train, 3 val): 6 / 69 = 8.7%, 7 / 70 = 10% (not above), 8 / 71 = 11.3%
    assert (found["skipped_files"]["grade"], found["skipped_files"]["count"]) == (grade, skipped)
    assert found["skipped_files"]["items"][0] == "bad/0.png"
    assert f"{skipped // 2} zero-byte" in found["skipped_files"]["message"]


def test_report_findings_empty_folders_and_conversions() -> None:
    train, test = balanced(np.random.default_rng(18))
    report = LoadReport(empty_classes={"train": ["bird"], "test": ["bird", "frog"]},
                        original_sizes={"32x32": 80, "28x28": 10}, original_modes={"RGB": 85, "L": 5},
                        conversions={"L->RGB": 5, "28x28->32x32": 10},
                        converted={"L->RGB": [f"g{i}.png" for i in range(5)],
                                   "28x28->32x32": [f"s{i}.png" for i in range(10)]})
    found = analyse(make_dataset(train, labels(60), test, labels(30), report=report))
    assert (found["empty_class_folders"]["grade"], found["empty_class_folders"]["items"]) == \
        ("warning", ["test/bird", "test/frog", "train/bird"])
    gray, resized = found["converted L->RGB"], found["converted 28x28->32x32"]
    assert (gray["grade"], gray["count"], gray["items"]) == ("info", 5, [f"g{i}.png" for i in range(5)])
    assert (resized["count"], resized["items"][-1]) == (10, "s9.png")
    assert "5 images were converted L->RGB" in gray["message"] and "32x32: 80" in gray["message"]


def test_near_constant_and_duplicate_grades() -> None:
    rng = np.random.default_rng(19)
    train, test = textured(rng, 300), textured(rng, 30)
    train[7] = 0
    test[3] = 255
    train[100] = train[50]  # 1 of 300 duplicates: 0.33%, info
    found = analyse(make_dataset(train, labels(300), test, labels(30), train_paths=False))
    assert found["near_constant_images"]["items"] == ["train[7]", "test[3]"]
    assert found["near_constant_images"]["grade"] == "warning"
    assert (found["duplicates_train"]["grade"], found["duplicates_train"]["items"]) == ("info", ["train[100]"])
    assert "tiny_classes" not in found


def test_capped_search_is_reported() -> None:
    near = NearDuplicates(pairs=[], max_distance=4, skipped_comparisons=1234, skipped_buckets=2)
    train, test = balanced(np.random.default_rng(20))
    dataset = make_dataset(train, labels(60), test, labels(30))
    stats = {name: image_stats(getattr(dataset, name)) for name in ("train", "val", "test")}
    found = {f["code"]: f for f in findings(dataset, stats, exact_duplicates(dataset), near, dataset.report)}
    assert (found["near_duplicate_search_capped"]["grade"], found["near_duplicate_search_capped"]["count"]) == \
        ("info", 1234)


def test_items_are_capped_but_count_is_not() -> None:
    rng = np.random.default_rng(21)
    train = textured(rng, 90)
    train[:] = train[:1]  # 89 copies of one image
    found = analyse(make_dataset(train, labels(90), textured(rng, 30), labels(30)))
    assert found["duplicates_train"]["count"] == 89 and len(found["duplicates_train"]["items"]) == 50


def test_finding_rejects_unknown_grade() -> None:
    with pytest.raises(ValueError, match="grade"):
        analysis.finding("fatal", "x", "y")


def test_popcount_fallback_for_old_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.array([0, 1, 2**63, 2**64 - 1, 0b1011], np.uint64)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert hamming(values, np.uint64(0)).tolist() == [0, 1, 1, 64, 3]
