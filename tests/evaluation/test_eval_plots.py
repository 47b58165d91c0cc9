"""Every plot writes one valid, reasonably sized PNG and leaves no figure open."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mlestar.evaluation import (
    expected_calibration_error,
    plot_class_distribution,
    plot_confusion_matrix,
    plot_misclassified,
    plot_reliability_diagram,
    plot_sample_grid,
    plot_training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# "<script>" must come out as text; "$\frac$" fails to draw if math parsing is left on
NAMES = ["cat", "<script>", r"$\frac$", "a rather long class name indeed"]


def assert_png(path: Path, written: Path) -> None:
    """``written`` is ``path``, a decodable PNG between 1 KB and 5 MB, no temp file beside it."""
    assert Path(written) == path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert 1_000 < len(data) < 5_000_000
    assert matplotlib.image.imread(path).ndim == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert plt.get_fignums() == []  # the figure was closed


@pytest.fixture
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def labels() -> np.ndarray:
    return np.arange(40) % 3  # the last class has no images


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix(tmp_path: Path, normalize: bool) -> None:
    cm = np.array([[5, 1, 0, 0], [2, 3, 0, 0], [0, 0, 4, 1], [0, 0, 0, 0]])
    path = tmp_path / "cm.png"
    assert_png(path, plot_confusion_matrix(cm, NAMES, path, normalize=normalize))


def test_confusion_matrix_many_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"class_{i}" for i in range(100)]  # no annotations, no tick labels
    path = tmp_path / "cm.png"
    assert_png(path, plot_confusion_matrix(rng.integers(0, 50, size=(100, 100)), names, path))


def test_class_distribution(tmp_path: Path) -> None:
    counts = {"train": np.array([50, 40, 30, 0]), "val": np.array([5, 4, 3, 0]), "test": np.array([6, 5, 4, 1])}
    path = tmp_path / "dist.png"
    assert_png(path, plot_class_distribution(counts, NAMES, path))


def test_sample_grid_rgb(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    path = tmp_path / "grid.png"
    assert_png(path, plot_sample_grid(images, labels, NAMES, path, per_class=4, seed=1))


def test_sample_grid_gray_is_deterministic(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    gray = images[..., :1]
    first, second = tmp_path / "a" / "grid.png", tmp_path / "b" / "grid.png"
    assert_png(first, plot_sample_grid(gray, labels, NAMES, first, seed=3))
    assert_png(second, plot_sample_grid(gray, labels, NAMES, second, seed=3))
    assert first.read_bytes() == second.read_bytes()


def test_sample_grid_rejects_two_channels(tmp_path: Path, labels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        plot_sample_grid(np.zeros((40, 8, 8, 2), np.uint8), labels, NAMES, tmp_path / "grid.png")


def test_training_curves(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_accuracy": 1 - 0.5 / e,
                "val_accuracy": 1 - 0.6 / e, "lr": 0.1 / e} for e in range(1, 6)]
    path = tmp_path / "curves.png"
    assert_png(path, plot_training_curves(history, path))


def test_training_curves_without_lr_or_val(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": None, "train_accuracy": 0.5} for e in range(1, 4)]
    path = tmp_path / "curves.png"
    assert_png(path, plot_training_curves(history, path))


def test_training_curves_rejects_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_training_curves([], tmp_path / "curves.png")


def test_reliability_diagram(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200)
    _, bins = expected_calibration_error(probs, rng.integers(0, 4, size=200))
    path = tmp_path / "reliability.png"
    assert_png(path, plot_reliability_diagram(bins, path))


def test_misclassified(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    pred = (labels + (np.arange(40) % 2)) % 4  # every other image wrong, some predicted as "<script>"
    confidence = np.linspace(0.3, 0.99, 40)
    path = tmp_path / "wrong.png"
    assert_png(path, plot_misclassified(images, labels, pred, confidence, NAMES, path, max_images=12))


def test_misclassified_with_no_mistakes(tmp_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    path = tmp_path / "wrong.png"
    assert_png(path, plot_misclassified(images, labels, labels, np.ones(40), NAMES, path))


def test_sample_grid_caps_rows(tmp_path: Path) -> None:
    images = np.zeros((300, 4, 4, 3), np.uint8)
    names = [f"c{i}" for i in range(300)]
    path = tmp_path / "grid.png"
    assert_png(path, plot_sample_grid(images, np.arange(300), names, path, per_class=2, max_classes=5))


def test_misclassified_gallery_is_drawn_once(tmp_path: Path, images: np.ndarray, labels: np.ndarray,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # One axes that fills the canvas needs no cropping, so no second draw to measure the figure.
    from matplotlib.figure import Figure

    draws: list[int] = []
    original = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: draws.append(1) or original(fig, renderer))
    pred = (labels + 1) % 3
    path = tmp_path / "wrong.png"
    assert_png(path, plot_misclassified(images, labels, pred, np.linspace(0.3, 0.99, 40), NAMES, path))
    assert len(draws) == 1


def test_misclassified_mosaic_holds_each_tile_at_its_origin() -> None:
    from mlestar.evaluation.plots import _titled_mosaic

    tiles = np.random.default_rng(0).integers(0, 256, size=(11, 6, 5, 3), dtype=np.uint8)
    mosaic, origins = _titled_mosaic(tiles, cols=4)
    assert len(origins) == 11 and origins[4][1] == 0 and origins[4][0] > origins[3][0]  # row 2 starts left
    for (top, left), tile in zip(origins, tiles):
        assert np.array_equal(mosaic[top:top + 6, left:left + 5], tile)
    assert (mosaic[:origins[0][0]] == 255).all()  # the title band above the first row is white
