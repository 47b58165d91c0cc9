"""Stage 1, situation analysis: what the data is, what is wrong with it, what to do about it.

Writes ``analysis.json`` (statistics, duplicates, near-duplicates, timings),
``dataset.json`` (the split record later stages verify against),
``recommendations.json`` (read by stage 3), ``report.md|html|json`` with
graded findings, and four plots. Blocking findings stop the run here, after
the report is written, so nothing trains on data known to be broken.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlestar.data.dataset import ImageDataset
from mlestar.errors import DataError
from mlestar.stages.common import Steps, dataset_record, markdown_table
from mlestar.utils.io import atomic_write_json
from mlestar.utils.report import write_report
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PROBE_MAX_TRAIN = 10_000  # nearest-centroid floor: a seeded sample is as telling as all of CIFAR-10, 5x faster
IMBALANCE_THRESHOLD = 1.5  # largest/smallest class count above which the loss is re-weighted
FLIP_UNSAFE_SOURCES = {"digits"}  # mirrored digits are other symbols (or none)
SPLITS = ("train", "val", "test")


def class_counts(dataset: ImageDataset) -> dict[str, list[int]]:
    """Images per class for each split."""
    return {name: getattr(dataset, name).class_counts(dataset.num_classes).tolist() for name in SPLITS}


def difficulty_probe(dataset: ImageDataset, seed: int = 0) -> float:
    """Validation accuracy of a nearest-centroid classifier on raw pixels: a floor any model must beat.

    Fitted on at most :data:`PROBE_MAX_TRAIN` training images (a seeded sample).
    """
    import warnings

    from sklearn.neighbors import NearestCentroid

    flat = lambda split: split.images.reshape(len(split), -1).astype(np.float32) / 255.0  # noqa: E731
    with warnings.catch_warnings():
        # Constant pixels (digit borders) trigger a harmless zero-variance warning.
        warnings.simplefilter("ignore", UserWarning)
        train = dataset.train
        if len(train) > PROBE_MAX_TRAIN:
            train = train.subset(np.sort(np.random.default_rng(seed).choice(len(train), PROBE_MAX_TRAIN, False)))
        probe = NearestCentroid().fit(flat(train), train.labels)
    return float((probe.predict(flat(dataset.val)) == dataset.val.labels).mean())


def recommend(dataset: ImageDataset, imbalance: float, probe_acc: float) -> dict[str, Any]:
    """Recommendations stage 3 applies, each with its reason."""
    mean, std = dataset.channel_stats()
    size = dataset.image_shape[0]
    flip_safe = dataset.name not in FLIP_UNSAFE_SOURCES
    pad = max(1, size // 16)
    return {
        "normalization": {"mean": mean, "std": std, "reason": "per-channel statistics of the training split"},
        "class_weighting": {
            "choice": "balanced" if imbalance > IMBALANCE_THRESHOLD else "none",
            "reason": f"imbalance ratio {imbalance:.2f} {'>' if imbalance > IMBALANCE_THRESHOLD else '<='} "
                      f"{IMBALANCE_THRESHOLD}"},
        "augmentation": {
            "choice": "flip_translate" if flip_safe else "translate", "translate_pad": pad, "flip_safe": flip_safe,
            "reason": f"{size}px images: random shifts of up to {pad}px"
                      + ("; horizontal flips keep the label" if flip_safe else "; flips would change the label")},
        "difficulty": {"nearest_centroid_val_accuracy": probe_acc,
                       "level": "easy" if probe_acc > 0.8 else "moderate" if probe_acc > 0.4 else "hard",
                       "reason": "accuracy of a nearest-centroid classifier on raw pixels"},
    }


def summarize(values: np.ndarray) -> dict[str, float]:
    """mean, std and quartiles of a per-image statistic."""
    if len(values) == 0:
        return {}
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(q[0]), "p25": float(q[1]),
            "median": float(q[2]), "p75": float(q[3]), "max": float(q[4])}


def build_analysis(dataset: ImageDataset, result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready analysis from :func:`mlestar.data.analysis.analyze_dataset`'s result."""
    from mlestar.data.analysis import image_ref, near_constant

    counts = class_counts(dataset)
    train_counts = np.array(counts["train"])
    mean, std = dataset.channel_stats()
    stats = result["stats"]
    near = result["near"]
    return {
        "class_names": list(dataset.class_names), "class_counts": counts,
        "imbalance_ratio": float(train_counts.max() / max(train_counts.min(), 1)),
        "image_shape": list(dataset.image_shape), "channel_mean": mean, "channel_std": std,
        "load": dataset.report.to_dict(), "notes": list(dataset.notes),
        "brightness": {s: summarize(stats[s]["brightness"]) for s in SPLITS},
        "contrast": {s: summarize(stats[s]["contrast"]) for s in SPLITS},
        "near_constant": {s: [image_ref(s, getattr(dataset, s), i) for i in near_constant(getattr(dataset, s),
                                                                                      stats=stats[s])]
                          for s in SPLITS},
        "duplicates": {k: v for k, v in result["dupes"].items()},
        "near_duplicates": {**near.to_dict(), "pairs": [
            {"test": image_ref("test", dataset.test, t), "train": image_ref("train", dataset.train, r), "distance": d}
            for t, r, d in near.pairs[:200]]},
        "brightness_terciles": list(result["terciles"]) if result["terciles"] else [85.0, 170.0],
        "missing_classes": {s: [dataset.class_names[i] for i, c in enumerate(v) if c == 0] for s, v in counts.items()},
        "findings": result["findings"], "seconds": result["seconds"],
    }


@register_stage
class SituationAnalysis(Stage):
    """Stage 1: dataset statistics, quality checks, plots, report, recommendations."""

    name = "situation_analysis"
    title = "Situation analysis"
    config_paths = ("data", "seed")
    outputs = ("analysis.json", "dataset.json", "recommendations.json", "report.md", "report.html", "report.json",
               "class_distribution.png", "sample_grid.png", "channel_histograms.png", "mean_images.png")
    uses_data_fingerprint = True
    reads_test = True
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.data.analysis import analyze_dataset

        steps = Steps(ctx, "situation analysis: load, checks, probe, plots", 4)
        dataset: ImageDataset = ctx.dataset()
        steps.advance()
        analysis = build_analysis(dataset, analyze_dataset(dataset))
        steps.advance()
        recs = recommend(dataset, analysis["imbalance_ratio"], difficulty_probe(dataset, ctx.config.seed))
        steps.advance()
        self._write(ctx, dataset, analysis, recs)
        steps.finish()
        for key in ("class_weighting", "augmentation"):
            ctx.decide(f"recommend_{key}", recs[key]["choice"], recs[key]["reason"])
        blocking = [f for f in analysis["findings"] if f["grade"] == "blocking"]
        if blocking:
            raise DataError("stage 1 found blocking data problems: " + "; ".join(f["message"] for f in blocking),
                            hint=f"see {ctx.out_dir / 'report.html'}; fix the data, then run again")
        return StageResult(metrics=self._metrics(dataset, analysis),
                           summary=f"{len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)} train/val/test "
                                   f"images, {dataset.num_classes} classes, imbalance "
                                   f"{analysis['imbalance_ratio']:.2f}, {len(analysis['findings'])} finding(s), "
                                   f"nearest-centroid floor {recs['difficulty']['nearest_centroid_val_accuracy']:.1%}")

    @staticmethod
    def _metrics(dataset: ImageDataset, analysis: dict[str, Any]) -> dict[str, float]:
        skipped = len(dataset.report.skipped)
        total = skipped + len(dataset.train) + len(dataset.val) + len(dataset.test)
        n_test = max(len(dataset.test), 1)
        return {"num_train_images": float(len(dataset.train)), "num_classes": float(dataset.num_classes),
                "imbalance_ratio": analysis["imbalance_ratio"], "unreadable_fraction": skipped / max(total, 1),
                "leakage_fraction": analysis["duplicates"]["test_in_train"] / n_test,
                "near_duplicate_fraction": len({p["test"] for p in analysis["near_duplicates"]["pairs"]}) / n_test,
                "blocking_findings": float(sum(f["grade"] == "blocking" for f in analysis["findings"]))}

    def _write(self, ctx: StageContext, dataset: ImageDataset, analysis: dict[str, Any],
               recs: dict[str, Any]) -> None:
        from mlestar.evaluation.plots import (
            plot_channel_histograms, plot_class_distribution, plot_mean_images, plot_sample_grid,
        )

        out = ctx.out_dir
        names = list(dataset.class_names)
        atomic_write_json(out / "analysis.json", analysis)
        atomic_write_json(out / "dataset.json", dataset_record(dataset))
        atomic_write_json(out / "recommendations.json", recs)
        plot_class_distribution({k: np.array(v) for k, v in analysis["class_counts"].items()}, names,
                                out / "class_distribution.png")
        plot_sample_grid(dataset.train.images, dataset.train.labels, names, out / "sample_grid.png",
                         per_class=8, seed=ctx.config.seed)
        plot_channel_histograms(dataset.train.images, out / "channel_histograms.png", seed=ctx.config.seed)
        plot_mean_images(dataset.train.images, dataset.train.labels, names, out / "mean_images.png")
        write_report(out, "report", f"Situation analysis: {dataset.name}", render_report(dataset, analysis, recs),
                     {"findings": analysis["findings"], "recommendations": recs,
                      "class_counts": analysis["class_counts"], "imbalance_ratio": analysis["imbalance_ratio"]})


REPORT_ITEMS = 20  # items a finding shows in report.md/html; report.json keeps up to analysis.MAX_ITEMS


def listed(found: dict[str, Any], limit: int = REPORT_ITEMS) -> str:
    """A finding's first ``limit`` items, and how many more it counts: ``"a, b (+3 more)"``."""
    shown = [str(item) for item in found["items"][:limit]]
    more = max(found["count"], len(found["items"])) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if shown and more > 0 else "")


def render_report(dataset: ImageDataset, analysis: dict[str, Any], recs: dict[str, Any]) -> str:
    """The Markdown report of stage 1 (also rendered to HTML)."""
    rows = [[name, *(analysis["class_counts"][s][i] for s in SPLITS)] for i, name in enumerate(dataset.class_names)]
    findings = markdown_table(["grade", "finding", "count", "files / items"],
                              [[f["grade"], f["message"], f["count"], listed(f)]
                               for f in analysis["findings"]]) if analysis["findings"] else "No findings."
    recommendations = "\n".join(f"- **{key}**: {value.get('choice', value.get('level', ''))} ({value['reason']})"
                                for key, value in recs.items())
    load = analysis["load"]
    shapes = ", ".join(f"{k}: {v}" for k, v in load["original_sizes"].items()) or "array source"
    modes = ", ".join(f"{k}: {v}" for k, v in load["original_modes"].items()) or "array source"
    bright = analysis["brightness"]["train"]
    notes = "\n".join(f"- {note}" for note in analysis["notes"])
    return (f"# Situation analysis: {dataset.name}\n\n"
            f"Images are {tuple(analysis['image_shape'])} (H, W, C) after loading; imbalance ratio "
            f"(largest/smallest train class) {analysis['imbalance_ratio']:.2f}.\n\n"
            f"## Findings\n\n{findings}\n\n"
            f"## Class counts\n\n{markdown_table(['class', 'train', 'val', 'test'], rows)}\n\n"
            f"![class distribution](class_distribution.png)\n\n![samples](sample_grid.png)\n\n"
            f"## Image characteristics\n\n- original sizes: {shapes}\n- original modes: {modes}\n"
            f"- per-channel mean {[round(m, 4) for m in analysis['channel_mean']]}, "
            f"std {[round(s, 4) for s in analysis['channel_std']]} (0..1 scale)\n"
            f"- train brightness mean {bright.get('mean', 0):.1f}, std {bright.get('std', 0):.1f} (0..255); "
            f"terciles {[round(t, 1) for t in analysis['brightness_terciles']]}\n\n"
            f"![channel histograms](channel_histograms.png)\n\n![mean image per class](mean_images.png)\n\n"
            f"## Splits\n\n{notes}\n\n## Recommendations\n\n{recommendations}\n")
