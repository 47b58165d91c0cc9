"""Stages 2 and 3 reuse cached throughput probes: a re-plan after a loop-back measures nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlestar.config import build_config
from mlestar.stages.common import DATASET_REF
from mlestar.stages.s2_task_definition import probe_throughput
from mlestar.stages.s3_action_planning import RECS_REF, SPEC_REF, ActionPlanning, base_plan
from mlestar.training import probe
from mlestar.training.plan import PlanDocument
from mlestar.training.probe_cache import NO_CACHE_ENV, reproducible

# images/s of the four widths on the 2-core development CPU (docs/benchmarks.md; airbench_l's a guess), in
# probing order. 3000 s give airbench 10 epochs of 45,000 images and airbench_l 3: all four are probed.
SPEEDS = [1130.0, 430.0, 180.0, 60.0]
BUDGET = "3000s"


class LoopSpy:
    """Stands in for ``loop_throughput``: counts calls and returns the next width's speed."""

    def __init__(self, speeds: list[float] = SPEEDS) -> None:
        self.calls, self.speeds = 0, speeds

    def __call__(self, model: Any, shape: tuple[int, int, int], num_classes: int, spec: Any, *,
                 device: Any) -> dict[str, Any]:
        self.calls += 1
        return {"images_per_second": self.speeds[(self.calls - 1) % len(self.speeds)], "steps": 18, "batch_size": spec.batch_size,
                "precision": spec.precision, "channels_last": spec.channels_last, "method": "spy"}


@pytest.fixture
def loop_spy(monkeypatch: pytest.MonkeyPatch) -> LoopSpy:
    spy = LoopSpy()
    monkeypatch.setattr(probe, "loop_throughput", spy)
    return spy


def planning_inputs() -> dict[str, Any]:
    """Stage 1's record and recommendations and stage 2's spec: 16px RGB images, 45,000 to train on."""
    record = {"image_shape": [16, 16, 3], "class_names": [str(i) for i in range(10)],
              "splits": {"train": {"size": 45_000}}}
    recs = {"augmentation": {"choice": "flip_translate", "translate_pad": 1, "flip_safe": True, "reason": "16px"},
            "class_weighting": {"choice": "none", "reason": "balanced"}}
    spec = {"probe": {"device": "cpu", "precision": "fp32", "reference_flops": 1e6}, "estimated_epoch_time_s": 1.0}
    return {DATASET_REF: record, RECS_REF: recs, SPEC_REF: spec}


class StubContext:
    """What stage 3's ``run`` uses of a :class:`StageContext`, recording its audit entries."""

    def __init__(self, out_dir: Path, adjustments: list[dict[str, str]] | None = None, **training: Any) -> None:
        self.config = build_config({"constraints": {"max_training_time": BUDGET}, "training": training})
        self.out_dir, self.adjustments = out_dir, adjustments or []
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.audit = self
        out_dir.mkdir(parents=True)

    def read_json(self, ref: str) -> Any:
        return copy.deepcopy(planning_inputs()[ref])

    def progress(self, label: str, done: int, total: int) -> None:
        pass

    def append(self, kind: str, **fields: Any) -> None:
        self.records.append((kind, fields))

    def decide(self, what: str, choice: Any, reason: str, **data: Any) -> None:
        self.append("decision", what=what, choice=choice, reason=reason, **data)

    def probe_entry(self) -> dict[str, Any]:
        return next(fields for kind, fields in self.records if kind == "throughput_probe")


def plan_twice(**training: Any) -> tuple[Any, Any]:
    config = build_config({"constraints": {"max_training_time": BUDGET}, "training": training})
    inputs = planning_inputs()
    return (base_plan(config, inputs[DATASET_REF], inputs[RECS_REF], inputs[SPEC_REF]),
            base_plan(config, inputs[DATASET_REF], inputs[RECS_REF], inputs[SPEC_REF]))


def test_a_second_plan_with_the_same_inputs_calls_no_probe(loop_spy: LoopSpy) -> None:
    (cold, cold_probes), (warm, warm_probes) = plan_twice()
    assert loop_spy.calls == 4 and list(cold_probes) == ["airbench_xs", "airbench_s", "airbench", "airbench_l"]
    assert [p["cache"]["status"] for p in cold_probes.values()] == ["miss"] * 4
    assert [p["cache"]["status"] for p in warm_probes.values()] == ["hit"] * 4
    assert warm.training == cold.training and warm.training.model == "airbench"
    assert [reproducible(p) for p in warm_probes.values()] == [reproducible(p) for p in cold_probes.values()]


def test_another_batch_size_is_another_measurement(loop_spy: LoopSpy) -> None:
    plan_twice()
    assert loop_spy.calls == 4
    plan_twice(batch_size=128)
    assert loop_spy.calls == 8  # measured once for batch 128, then hits


def test_the_bypass_switch_measures_every_probe(loop_spy: LoopSpy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    (_, probes), _ = plan_twice()
    assert loop_spy.calls == 8 and {p["cache"]["status"] for p in probes.values()} == {"bypassed"}


def test_a_re_plan_after_a_loop_back_reuses_every_probe_and_says_so(loop_spy: LoopSpy, tmp_path: Path) -> None:
    first = StubContext(tmp_path / "first")
    cold = ActionPlanning().run(first)
    assert loop_spy.calls == 4 and cold.summary.endswith("; probes: 0 cached, 4 measured")
    remedy = {"gate": "acc", "remedy": "add_regularization", "diagnosis": "overfitting"}
    again = StubContext(tmp_path / "again", adjustments=[remedy])
    warm = ActionPlanning().run(again)
    assert loop_spy.calls == 4 and warm.summary.endswith("; probes: 4 cached, 0 measured")
    # the audit trail names each probe's source, key and age
    entry = again.probe_entry()
    assert entry["stage"] == "action_planning"
    assert {name: p["cache"]["status"] for name, p in entry["probes"].items()} == dict.fromkeys(entry["probes"], "hit")
    assert all(len(p["cache"]["key"]) == 64 and p["cache"]["age_s"] >= 0 for p in entry["probes"].values())
    assert {p["cache"]["status"] for p in first.probe_entry()["probes"].values()} == {"miss"}
    # plan.json keeps each probe's key and measurement time; plan.md says it was a cache hit
    doc = PlanDocument.load(again.out_dir / "plan.json")
    assert doc.probes["airbench"]["cache"] == {"key": entry["probes"]["airbench"]["cache"]["key"],
                                               "measured_at": entry["probes"]["airbench"]["cache"]["measured_at"]}
    assert doc.adjustments[0].startswith("add_regularization (gate acc): ") and doc.training.label_smoothing > 0
    md = (again.out_dir / "plan.md").read_text()
    assert "## Throughput probes" in md and md.count("| cache hit (measured ") == 4
    assert entry["probes"]["airbench_s"]["cache"]["key"][:16] in md
    assert md.count("| measured (cache miss) |") == 0
    assert (first.out_dir / "plan.md").read_text().count("| measured (cache miss) |") == 4


def test_a_stage_3_that_executes_again_on_hits_writes_the_same_plan_json(loop_spy: LoopSpy, tmp_path: Path) -> None:
    # The next stages are keyed by plan.json's sha256: the same bytes mean stage 4 is reused, not retrained.
    ActionPlanning().run(StubContext(tmp_path / "cold"))
    ActionPlanning().run(StubContext(tmp_path / "warm"))
    assert loop_spy.calls == 4
    assert (tmp_path / "warm" / "plan.json").read_bytes() == (tmp_path / "cold" / "plan.json").read_bytes()
    assert (tmp_path / "warm" / "plan.md").read_text() != (tmp_path / "cold" / "plan.md").read_text()


def test_stage_2_reuses_its_reference_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def step_spy(model: Any, shape: Any, num_classes: int, *, batch_size: int, **kwargs: Any) -> dict[str, Any]:
        calls.append(batch_size)
        return {"images_per_second": 5000.0, "steps": 4, "batch_size": batch_size, "precision": "fp32",
                "channels_last": False}

    monkeypatch.setattr(probe, "train_throughput", step_spy)
    config = build_config({"training": {"num_threads": 1}})
    cold = probe_throughput([16, 16, 3], 10, config)
    warm = probe_throughput([16, 16, 3], 10, config)
    assert calls == [64] and (cold["cache"]["status"], warm["cache"]["status"]) == ("miss", "hit")
    assert reproducible(warm) == reproducible(cold) and warm["images_per_second"] == 5000.0
    assert probe_throughput([16, 16, 1], 10, config)["cache"]["status"] == "miss" and calls == [64, 64]


@pytest.mark.slow  # a whole run of seven stages, twice through stages 3-4: about 45 s on the 2-core CPU
def test_the_runner_s_loop_back_re_plans_on_cache_hits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from image_trees import write_flat_tree
    from mlestar.tracking.audit import read_records
    from tiny_workflow import run_tiny

    # airbench_s too slow for 6 epochs: two probes, and the smallest net trains (quickly)
    loop_spy = LoopSpy([1130.0, 0.001])
    monkeypatch.setattr(probe, "loop_throughput", loop_spy)

    folder = write_flat_tree(tmp_path / "images", {"a": 12, "b": 12})  # 12px, resized to 16: airbench sizes
    gate = {"metric": "epochs_completed", "op": ">=", "threshold": 4, "on_fail": {"max_attempts": 2}}
    state = run_tiny(tmp_path / "runs", data={"source": "imagefolder", "path": str(folder), "image_size": 16},
                     constraints={"max_training_time": BUDGET}, gates=[gate], refinement={"enabled": False})
    assert state.status == "passed" and state.stage("action_planning")["attempts"] == 2
    assert loop_spy.calls == 2  # the first plan measured two widths; the re-plan measured none
    entries = [r["data"] for r in read_records(tmp_path / "runs" / state.run_id / "audit.jsonl")
               if r["event"] == "throughput_probe"]
    assert [{p["cache"]["status"] for p in e["probes"].values()} for e in entries] == [{"miss"}, {"hit"}]
    assert state.stage("action_planning")["summary"].endswith("; probes: 2 cached, 0 measured")


def test_stage_3_probes_with_the_configured_threads_whatever_the_process_had(loop_spy: LoopSpy) -> None:
    # A resumed process never ran stage 2, which sets the threads: stage 3 sets them itself, so its
    # probes time what training will use and its keys match the first process's.
    import json

    import torch

    from mlestar.training.probe_cache import probe_cache_dir

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        (_, probes), _ = plan_twice(num_threads=1)
        assert torch.get_num_threads() == 1 and loop_spy.calls == 4
        entry = json.loads((probe_cache_dir() / f"{probes['airbench']['cache']['key']}.json").read_text())
        assert entry["machine"]["threads"] == 1 and entry["setup"]["plan"]["model"] == "airbench"
    finally:
        torch.set_num_threads(before)


def test_stage_4_drops_and_audits_a_probe_that_training_outran(private_cache: Path) -> None:
    from mlestar.stages.s4_implementation import _check_probe
    from mlestar.training.probe_cache import cached_measurement, probe_cache_dir, reproducible

    probe = reproducible(cached_measurement({"model": "airbench_s"}, "cpu", lambda: {"images_per_second": 200.0}))

    class Ctx:
        decisions: list[tuple] = []

        def decide(self, what: str, choice: object, reason: str) -> None:
            self.decisions.append((what, choice, reason))

    ctx = Ctx()
    _check_probe(ctx, probe, "airbench_s", 250.0)  # 1.25x: noise on a steady machine
    assert ctx.decisions == [] and (probe_cache_dir() / f"{probe['cache']['key']}.json").exists()
    _check_probe(ctx, probe, "airbench_s", 570.0)  # 2.85x: the probe ran under load
    [(what, choice, reason)] = ctx.decisions
    assert what == "probe_cache_entry_removed" and choice == "airbench_s" and "2.9x" in reason
    assert not (probe_cache_dir() / f"{probe['cache']['key']}.json").exists()
