"""Stage 4, implementation: train the planned model with checkpoints, resume and TensorBoard.

Writes ``model.pt`` (best-validation weights plus architecture and
preprocessing), ``checkpoints/last.pt`` (every epoch; what ``--resume``
continues from), ``history.json``, ``metrics.json``, ``training_curves.png``
and ``tensorboard/``.
"""

from __future__ import annotations

from typing import Any

from mlestar.stages.common import DATASET_REF, checked_dataset
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PLAN_REF = "action_planning/plan.json"


@register_stage
class Implementation(Stage):
    """Stage 4: the training run."""

    name = "implementation"
    title = "Implementation (training)"
    config_paths = ("data", "seed", "deterministic", "constraints.max_training_time")
    inputs = (DATASET_REF, PLAN_REF)
    outputs = ("model.pt", "history.json", "metrics.json", "training_curves.png", "checkpoints/last.pt")

    def run(self, ctx: StageContext) -> StageResult:
        import torch

        from mlestar.evaluation.plots import plot_training_curves
        from mlestar.data.dataset import split_hash
        from mlestar.training import fit, save_model_file, split_to_tensors
        from mlestar.training.distributed import train_ddp
        from mlestar.training.plan import PlanDocument, architecture, build_model, spec_from_plan
        from mlestar.training.runtime import configure_torch

        plan_json = ctx.read_json(PLAN_REF)
        plan = PlanDocument.from_json(plan_json, source=PLAN_REF).training
        dataset, prep = checked_dataset(ctx)
        configure_torch(plan.num_threads, ctx.config.deterministic)
        if plan.processes > 1:
            result = train_ddp(plan, data=ctx.config.data.model_dump(mode="json"), seed=ctx.config.seed,
                               preprocessing=prep.to_dict(), max_seconds=ctx.config.constraints.max_training_time,
                               split_hashes={n: split_hash(getattr(dataset, n)) for n in ("train", "val")},
                               resume=ctx.resume, out_dir=ctx.out_dir, report=ctx.report)
            ctx.decide("distributed", result.world, f"DDP over {result.world} processes (torchrun)")
        else:
            device = torch.device(plan.device)
            spec = spec_from_plan(plan, max_seconds=ctx.config.constraints.max_training_time)
            result = fit(build_model(plan).to(device), split_to_tensors(dataset.train, prep, device),
                         split_to_tensors(dataset.val, prep, device), spec, out_dir=ctx.out_dir, resume=ctx.resume,
                         report=ctx.report, progress=lambda done, total: ctx.progress("training epochs", done, total))
        if result.resumed_from:
            ctx.audit.append("training_resumed", stage=self.name, from_epoch=result.resumed_from)
        if result.stopped_early:
            ctx.decide("stop_early", result.stopped_early, "constraints.max_training_time")
        if plan.processes == 1 and not result.resumed_from:  # whole epochs timed in this one process
            _check_probe(ctx, (plan_json.get("probes") or {}).get(plan.model), plan.model,
                         len(dataset.train) * len(result.history) / max(result.training_time, 1e-9))
        save_model_file(ctx.out_dir / "model.pt", result.model.cpu(), architecture=architecture(plan),
                        preprocessing=prep.to_dict(), class_names=list(dataset.class_names))
        best = result.history[result.best_epoch - 1]
        metrics = {"val_accuracy": best["val_accuracy"], "train_accuracy": best["train_accuracy"],
                   "val_loss": best["val_loss"], "training_time": result.training_time,
                   "epochs_completed": float(len(result.history))}
        atomic_write_json(ctx.out_dir / "history.json", result.history)
        atomic_write_json(ctx.out_dir / "metrics.json", {**metrics, "best_epoch": result.best_epoch,
                                                         "resumed_from_epoch": result.resumed_from,
                                                         "stopped_early": result.stopped_early,
                                                         # what stage 6 checks before reusing this run as its
                                                         # "before" side (tuning/compare.stage4_reuse)
                                                         "seed": plan.seed,
                                                         "split_hashes": {n: s["hash"] for n, s in
                                                                          ctx.read_json(DATASET_REF)["splits"].items()
                                                                          if n in ("train", "val")},
                                                         "trained_on": f"train split only ({len(dataset.train)} "
                                                                       f"images; validation held out)"})
        plot_training_curves(result.history, ctx.out_dir / "training_curves.png")
        return StageResult(metrics=metrics,
                           summary=f"val accuracy {best['val_accuracy']:.2%} at epoch {result.best_epoch}/"
                                   f"{len(result.history)} in {result.training_time:.1f}s")


def _check_probe(ctx: StageContext, probe: Any, model: str, images_per_second: float) -> None:
    """Audit, and drop from the probe cache, a planning probe that training showed was slowed by load."""
    from mlestar.training.probe_cache import forget_if_understated

    reason = forget_if_understated(probe, images_per_second) if isinstance(probe, dict) else None
    if reason:
        ctx.decide("probe_cache_entry_removed", model, reason)
