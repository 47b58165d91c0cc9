"""Stage 1, situation analysis: what the data is, what is wrong with it, what to do about it.

Writes ``analysis.json`` (statistics), ``dataset.json`` (the split record
later stages verify against), ``recommendations.json`` (read by stage 3),
``report.md`` and two plots.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlestar.data.dataset import ImageDataset
from mlestar.stages.common import dataset_record, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text, sha256_bytes
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

IMBALANCE_THRESHOLD = 1.5  # largest/smallest class count above which the loss is re-weighted
FLIP_UNSAFE_SOURCES = {"digits"}  # mirrored digits are other symbols (or none)


def class_counts(dataset: ImageDataset) -> dict[str, list[int]]:
    """Images per class for each split."""
    return {name: getattr(dataset, name).class_counts(dataset.num_classes).tolist()
            for name in ("train", "val", "test")}


def exact_duplicates(dataset: ImageDataset) -> dict[str, int]:
    """Identical images within train, and test images that also appear in train (leakage)."""
    train_hashes = [sha256_bytes(img.tobytes()) for img in dataset.train.images]
    test_hashes = [sha256_bytes(img.tobytes()) for img in dataset.test.images]
    train_set = set(train_hashes)
    return {"within_train": len(train_hashes) - len(train_set),
            "test_in_train": sum(h in train_set for h in test_hashes)}


def difficulty_probe(dataset: ImageDataset) -> float:
    """Validation accuracy of a nearest-centroid classifier on raw pixels: a floor any model must beat."""
    from sklearn.neighbors import NearestCentroid

    flat = lambda split: split.images.reshape(len(split), -1).astype(np.float32) / 255.0  # noqa: E731
    with warnings.catch_warnings():
        # Constant pixels (digit borders) trigger a harmless zero-variance warning.
        warnings.simplefilter("ignore", UserWarning)
        probe = NearestCentroid().fit(flat(dataset.train), dataset.train.labels)
    return float((probe.predict(flat(dataset.val)) == dataset.val.labels).mean())


def recommend(dataset: ImageDataset, imbalance: float, probe_acc: float) -> dict[str, Any]:
    """Recommendations stage 3 applies, each with its reason."""
    mean, std = dataset.channel_stats()
    size = dataset.image_shape[0]
    flip_safe = dataset.name not in FLIP_UNSAFE_SOURCES
    augmentation = "flip_translate" if flip_safe else "translate"
    return {
        "normalization": {"mean": mean, "std": std, "reason": "per-channel statistics of the training split"},
        "class_weighting": {
            "choice": "balanced" if imbalance > IMBALANCE_THRESHOLD else "none",
            "reason": f"imbalance ratio {imbalance:.2f} {'>' if imbalance > IMBALANCE_THRESHOLD else '<='} "
                      f"{IMBALANCE_THRESHOLD}"},
        "augmentation": {
            "choice": augmentation, "translate_pad": max(1, size // 8), "flip_safe": flip_safe,
            "reason": f"{size}px images: shifts of {max(1, size // 8)}px"
                      + ("; horizontal flips keep the label" if flip_safe else "; flips would change the label")},
        "difficulty": {"nearest_centroid_val_accuracy": probe_acc,
                       "level": "easy" if probe_acc > 0.8 else "moderate" if probe_acc > 0.4 else "hard",
                       "reason": "accuracy of a nearest-centroid classifier on raw pixels"},
    }


@register_stage
class SituationAnalysis(Stage):
    """Stage 1: dataset statistics, quality checks, plots, report, recommendations."""

    name = "situation_analysis"
    title = "Situation analysis"
    config_paths = ("data", "seed")
    outputs = ("analysis.json", "dataset.json", "recommendations.json", "report.md",
               "class_distribution.png", "sample_grid.png")
    code_modules = ("mlestar.data", "mlestar.stages.common")
    uses_data_fingerprint = True

    def run(self, ctx: StageContext) -> StageResult:
        dataset: ImageDataset = ctx.dataset()
        counts = class_counts(dataset)
        train_counts = np.array(counts["train"])
        imbalance = float(train_counts.max() / max(train_counts.min(), 1))
        dupes = exact_duplicates(dataset)
        probe_acc = difficulty_probe(dataset)
        mean, std = dataset.channel_stats()
        analysis = {"class_names": list(dataset.class_names), "class_counts": counts,
                    "imbalance_ratio": imbalance, "image_shape": list(dataset.image_shape),
                    "channel_mean": mean, "channel_std": std, "duplicates": dupes, "notes": list(dataset.notes),
                    "missing_classes": {s: [dataset.class_names[i] for i, c in enumerate(v) if c == 0]
                                        for s, v in counts.items()}}
        recs = recommend(dataset, imbalance, probe_acc)
        self._write(ctx, dataset, analysis, recs)
        for key in ("class_weighting", "augmentation"):
            ctx.decide(f"recommend_{key}", recs[key]["choice"], recs[key]["reason"])
        leakage = dupes["test_in_train"] / max(len(dataset.test), 1)
        return StageResult(
            metrics={"num_train_images": float(len(dataset.train)), "num_classes": float(dataset.num_classes),
                     "imbalance_ratio": imbalance, "unreadable_fraction": 0.0, "leakage_fraction": leakage},
            summary=f"{len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)} train/val/test images, "
                    f"{dataset.num_classes} classes, imbalance {imbalance:.2f}, "
                    f"nearest-centroid floor {probe_acc:.1%}")

    def _write(self, ctx: StageContext, dataset: ImageDataset, analysis: dict[str, Any],
               recs: dict[str, Any]) -> None:
        from mlestar.evaluation.plots import plot_class_distribution, plot_sample_grid

        out = ctx.out_dir
        atomic_write_json(out / "analysis.json", analysis)
        atomic_write_json(out / "dataset.json", dataset_record(dataset))
        atomic_write_json(out / "recommendations.json", recs)
        plot_class_distribution({k: np.array(v) for k, v in analysis["class_counts"].items()},
                                list(dataset.class_names), out / "class_distribution.png")
        plot_sample_grid(dataset.train.images, dataset.train.labels, list(dataset.class_names),
                         out / "sample_grid.png", per_class=8, seed=ctx.config.seed)
        atomic_write_text(out / "report.md", render_report(dataset, analysis, recs))


def render_report(dataset: ImageDataset, analysis: dict[str, Any], recs: dict[str, Any]) -> str:
    """The Markdown report of stage 1."""
    rows = [[name, *(analysis["class_counts"][s][i] for s in ("train", "val", "test"))]
            for i, name in enumerate(dataset.class_names)]
    recommendations = "\n".join(f"- **{key}**: {value.get('choice', '')} ({value['reason']})"
                                for key, value in recs.items())
    notes = "\n".join(f"- {note}" for note in analysis["notes"])
    return (f"# Situation analysis: {dataset.name}\n\n"
            f"Image shape (H, W, C): {tuple(analysis['image_shape'])}; "
            f"imbalance ratio (largest/smallest train class): {analysis['imbalance_ratio']:.2f}\n\n"
            f"## Class counts\n\n{markdown_table(['class', 'train', 'val', 'test'], rows)}\n\n"
            f"![class distribution](class_distribution.png)\n\n![samples](sample_grid.png)\n\n"
            f"## Quality\n\n- exact duplicates within train: {analysis['duplicates']['within_train']}\n"
            f"- test images identical to a train image (leakage): {analysis['duplicates']['test_in_train']}\n\n"
            f"## Splits\n\n{notes}\n\n## Recommendations\n\n{recommendations}\n")
