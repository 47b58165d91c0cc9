"""Decoding an image folder reports ``(done, total)`` once per chunk, not per file, and ends at ``done == total``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from image_trees import archive, write_flat_tree
from mlestar.config.schema import DataConfig
from mlestar.data.imagefolder import decode_folder

FILES = 13  # 7 + 6 images: three full chunks of 4 and one of 1


def tree(tmp_path: Path, kind: str) -> Path:
    folder = write_flat_tree(tmp_path / "tree", {"a": 7, "b": 6})
    return folder if kind == "directory" else archive(folder, tmp_path / f"data.{kind}")


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "pool"])
@pytest.mark.parametrize("kind", ["directory", "zip", "tar.gz"])
def test_decoding_reports_each_chunk_and_ends_full(tmp_path: Path, kind: str, workers: int) -> None:
    calls: list[tuple[int, int]] = []
    decoded = decode_folder(DataConfig(source="imagefolder", path=tree(tmp_path, kind)), workers=workers, chunk=4,
                            progress=lambda done, total: calls.append((done, total)))
    assert len(decoded.splits["train"]) + sum(len(s) for n, s in decoded.splits.items() if n != "train") == FILES
    assert calls[0][0] == 0 and calls[-1] == (FILES, FILES)
    assert len(calls) == 1 + math.ceil(FILES / 4) + 1  # the start, one per chunk, the end: not one per file
    dones = [done for done, _ in calls]
    assert dones == sorted(dones) and all(done <= total for done, total in calls)
    if kind != "tar.gz":  # a folder or zip is counted before decoding: the bar knows its end from the start
        assert calls[0] == (0, FILES)
        assert {total for _, total in calls} == {FILES}


def test_the_run_reports_decoding_once_and_a_cached_load_reports_nothing(tmp_path: Path) -> None:
    """Through the domain seam, as the runner calls it; the second load is a decoded-image cache hit."""
    from mlestar.domains import load_dataset

    config = DataConfig(source="imagefolder", path=tree(tmp_path, "directory"))
    first: list[tuple[int, int]] = []
    load_dataset(config, 0, progress=lambda done, total: first.append((done, total)))
    assert first[0] == (0, FILES) and first[-1] == (FILES, FILES)
    again: list[tuple[int, int]] = []
    dataset = load_dataset(config, 0, progress=lambda done, total: again.append((done, total)))
    assert dataset.report.source["cache"] == "hit" and again == []
