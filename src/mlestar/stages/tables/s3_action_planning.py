"""Stage 3 for tables: the preprocessing pipeline and learner, each choice justified by stage 1.

Columns stage 1 recommends dropping are dropped with its reason; the rest get
imputation and an encoding by cardinality; the learner fits the budget
measured in stage 2; remedies after failed gates change the learner's
parameters. Writes ``plan.json`` (a :class:`TablePlan`) and ``plan.md``.
"""

from __future__ import annotations

from mlestar.stages.common import markdown_table
from mlestar.stages.tables.common import DATASET_REF
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

RECS_REF = "situation_analysis/recommendations.json"
SPEC_REF = "task_definition/task_spec.json"


def render_plan(plan: object, lines: list[str]) -> str:
    """``plan.md``: the learner and its reasons, then every column's step."""
    from mlestar.domains.tables.plan import TablePlan

    assert isinstance(plan, TablePlan)
    reasons = markdown_table(["decision", "reason"], [[k, v] for k, v in plan.reasons.items()])
    columns = markdown_table(["column", "kind", "action", "reason"],
                             [[s.column, s.kind, s.action, s.reason] for s in plan.columns])
    remedies = "".join(f"- {line}\n" for line in lines) or "- none\n"
    return (f"# Plan: {plan.learner} for a {plan.task} task on {plan.target!r}\n\n"
            f"Parameters: `{plan.params}`; early stopping after {plan.early_stopping_rounds} rounds; class weight "
            f"{plan.class_weight}; target transform {plan.target_transform}; {plan.cv_folds or 'no'} CV folds.\n\n"
            f"## Decisions\n\n{reasons}\n\n## Columns\n\n{columns}\n\n## Remedies\n\n{remedies}")


@register_stage
class TableActionPlanning(Stage):
    """Stage 3 (tables): the plan, column by column."""

    name = "action_planning"
    domain = "tables"
    title = "Action planning"
    config_paths = ("tables", "constraints.max_training_time", "seed")
    inputs = (DATASET_REF, RECS_REF, SPEC_REF)
    outputs = ("plan.json", "plan.md")
    uses_adjustments = True
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.domains.tables.learners import learner_spec
        from mlestar.domains.tables.planning import apply_remedies, make_plan

        record, recs, spec = ctx.read_json(DATASET_REF), ctx.read_json(RECS_REF), ctx.read_json(SPEC_REF)
        cfg = ctx.config.tables
        plan = make_plan(record, recs, learner=None if cfg.learner == "auto" else cfg.learner,
                         seed=ctx.config.seed, cv_folds=cfg.cv_folds,
                         budget_s=ctx.config.constraints.max_training_time,
                         fit_time_s=spec["probe"]["estimated_fit_seconds"])
        plan = plan.with_changes(params={**plan.params, **cfg.params},
                                 early_stopping_rounds=cfg.early_stopping_rounds)
        plan, lines = apply_remedies(plan, ctx.adjustments, learner_spec(plan.learner).defaults)
        atomic_write_json(ctx.out_dir / "plan.json", plan.model_dump(mode="json"))
        atomic_write_text(ctx.out_dir / "plan.md", render_plan(plan, lines))
        dumped = plan.model_dump(mode="json")
        for key, reason in plan.reasons.items():
            ctx.decide(key, dumped.get(key), reason)
        for step in plan.columns:
            if step.action == "drop":
                ctx.decide("drop_column", step.column, step.reason)
        fits = 1 + plan.cv_folds
        # The probe times LightGBM; for the linear baseline the figure is an upper bound.
        seconds = spec["probe"]["estimated_fit_seconds"] * fits
        kept = len(plan.inputs)
        return StageResult(metrics={"planned_training_time": seconds, "planned_features": float(kept)},
                           summary=f"{plan.learner}, {kept} of {len(plan.columns)} columns kept, class weight "
                                   f"{plan.class_weight}, target {plan.target_transform}; est. {seconds:.1f}s")
