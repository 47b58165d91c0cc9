"""Stage 1 data plots: channel histograms and per-class mean images write valid PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mlestar.evaluation import plots
from mlestar.evaluation.plots import plot_channel_histograms, plot_mean_images

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAMES = ["cat", "<script>", r"$\frac$", "a rather long class name indeed"]


def assert_png_written(path: Path, written: Path) -> None:
    """``written`` is ``path``, a PNG by its magic bytes, alone in its folder, its figure closed."""
    assert Path(written) == path
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert plt.get_fignums() == []


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_histograms_png(tmp_path: Path, channels: int) -> None:
    data = np.random.default_rng(channels).integers(0, 256, (20, 8, 8, channels), dtype=np.uint8)
    path = tmp_path / "hist.png"
    assert_png_written(path, plot_channel_histograms(data, path))


def test_channel_histograms_title_names_the_sample(tmp_path: Path, images: np.ndarray,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    titles: list[str] = []
    original = plots._save

    def spy(fig: plt.Figure, path: Path) -> Path:
        titles.append(fig.axes[0].get_title())
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    plot_channel_histograms(images, tmp_path / "a.png", max_images=10)
    plot_channel_histograms(images, tmp_path / "b.png")
    assert titles == ["pixel values per channel (random sample of 10 of 40 images)",
                      "pixel values per channel (all 40 images)"]


def test_channel_histograms_empty_and_bad_shape(tmp_path: Path, images: np.ndarray) -> None:
    path = tmp_path / "empty.png"
    assert_png_written(path, plot_channel_histograms(images[:0], path))
    with pytest.raises(ValueError, match="C in 1..4"):
        plot_channel_histograms(images[..., :1].repeat(5, axis=-1), tmp_path / "bad.png")


def test_mean_images_png_with_markup_names_and_an_empty_class(tmp_path: Path, images: np.ndarray) -> None:
    labels = np.arange(40) % 3  # class 3 ("a rather long ...") has no images
    path = tmp_path / "means.png"
    assert_png_written(path, plot_mean_images(images, labels, NAMES, path))


def test_mean_images_values(images: np.ndarray) -> None:
    labels = np.arange(40) % 2
    mean, count = plots._class_mean(images, labels, 1)
    assert count == 20
    np.testing.assert_array_equal(mean, np.round(images[1::2].astype(np.float64).mean(axis=0)).astype(np.uint8))
    assert plots._class_mean(images, labels, 5) == (None, 0)


def test_mean_images_many_classes_and_none(tmp_path: Path, images: np.ndarray) -> None:
    many = tmp_path / "many" / "means.png"
    names = [f"class {i}" for i in range(100)]
    assert_png_written(many, plot_mean_images(images, np.arange(40), names, many, max_classes=12))
    none = tmp_path / "none" / "means.png"
    assert_png_written(none, plot_mean_images(images, np.zeros(40), [], none))
