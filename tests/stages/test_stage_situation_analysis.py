"""Stage 1 on a real, messy ImageFolder archive: every finding by its exact count and path."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from image_trees import MESSY_CONVERTED, MESSY_SKIPPED, archive, encode, pixels, put, rgb_png, write_messy_tree
from mlestar.cli.app import app
from mlestar.workflow.state import RunState


def messy_dataset(root: Path) -> Path:
    """The messy tree plus a val folder, a duplicate in train, a leaked and a near-copied test image."""
    write_messy_tree(root)
    for cls, seed in (("cat", 70), ("dog", 71), ("fish", 72)):
        put(root, f"ds/val/{cls}/v.png", rgb_png(seed))
    put(root, "ds/train/cat/c0_copy.png", rgb_png(0))          # exact duplicate of train/cat/c0.png
    put(root, "ds/test/fish/leak.png", rgb_png(21))             # exact copy of train/fish/f1.png
    brighter = np.clip(pixels(2).astype(int) + 6, 0, 255).astype(np.uint8)
    put(root, "ds/test/cat/near.png", encode(Image.fromarray(brighter), "PNG"))  # near copy of train/cat/c2.png
    return archive(root, root.parent / "ds.tar.gz")


def add_clean_images(root: Path) -> None:
    """40 more train and 12 more test images per class: the messy files drop below blocking shares."""
    for cls, base in (("cat", 1000), ("dog", 2000), ("fish", 3000)):
        for i in range(40):
            put(root, f"ds/train/{cls}/extra{i}.png", rgb_png(base + i))
        for i in range(12):
            put(root, f"ds/test/{cls}/extra{i}.png", rgb_png(base + 500 + i))


def run_stage1(tmp_path: Path, data_path: Path) -> tuple[object, Path | None]:
    """``mlestar run --only situation_analysis``; returns the CLI result and the run folder, if any."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"project": {"name": "messy"},
                                      "data": {"source": "imagefolder", "path": str(data_path)}}))
    result = CliRunner().invoke(app, ["run", str(config), "--only", "situation_analysis",
                                      "--runs-dir", str(tmp_path / "runs")])
    runs = tmp_path / "runs"
    run_dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
    return result, (run_dirs[0] if run_dirs else None)


def by_code(findings: list[dict]) -> dict[str, dict]:
    return {f["code"]: f for f in findings}


def test_blocking_findings_stop_the_run_after_a_complete_report(tmp_path: Path) -> None:
    result, run_dir = run_stage1(tmp_path, messy_dataset(tmp_path / "src"))
    assert result.exit_code == 2 and "blocking data problems" in result.output
    assert "Traceback" not in result.output
    out = run_dir / "01_situation_analysis"
    analysis = json.loads((out / "analysis.json").read_text())
    assert sorted((s["path"], s["reason"]) for s in analysis["load"]["skipped"]) == sorted(MESSY_SKIPPED)
    assert analysis["class_names"] == ["cat", "dog", "fish"]
    assert analysis["class_counts"]["train"] == [6, 6, 5] and analysis["class_counts"]["test"] == [3, 2, 3]
    assert analysis["duplicates"]["within"]["train"] == 1
    assert analysis["duplicates"]["test_in_train"] == 1
    assert [list(p) for p in analysis["duplicates"]["test_train_pairs"]] == \
        [["ds/test/fish/leak.png", "ds/train/fish/f1.png"]]
    near = {(p["test"], p["train"]) for p in analysis["near_duplicates"]["pairs"]}
    assert ("ds/test/cat/near.png", "ds/train/cat/c2.png") in near
    assert analysis["load"]["conversions"] == {"RGBA->RGB": 1, "L->RGB": 1, "P->RGB": 1, "20x16->12x12": 1}
    assert analysis["load"]["empty_classes"] == {"train": ["empty"]}
    findings = by_code(analysis["findings"])
    blocking = {code for code, f in findings.items() if f["grade"] == "blocking"}
    assert blocking == {"skipped_files", "leakage_test"}  # 6/34 = 17.6% > 10%; 1/8 = 12.5% > 5%
    assert sorted(findings["skipped_files"]["items"]) == sorted(p for p, _ in MESSY_SKIPPED)
    assert findings["skipped_files"]["count"] == 6
    for what, files in MESSY_CONVERTED.items():  # each conversion names its files, in JSON and report
        assert (findings[f"converted {what}"]["items"], findings[f"converted {what}"]["count"]) == (files, 1)
    report_json = by_code(json.loads((out / "report.json").read_text())["findings"])
    assert report_json["converted L->RGB"]["items"] == ["ds/train/dog/gray.png"]
    markdown = (out / "report.md").read_text()
    assert "ds/train/dog/gray.png" in markdown and "ds/train/dog/big.png" in markdown
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4
    state = RunState.load(run_dir)
    assert state.status == "failed" and state.stage("situation_analysis")["status"] == "failed"


def test_report_lists_up_to_twenty_items_and_says_how_many_more() -> None:
    from mlestar.stages.s1_situation_analysis import listed

    found = {"items": [f"f{i}.png" for i in range(25)], "count": 30}
    assert listed(found) == ", ".join(f"f{i}.png" for i in range(20)) + " (+10 more)"
    assert listed({"items": ["a.png"], "count": 1}) == "a.png"
    assert listed({"items": [], "count": 7}) == ""


def test_warnings_only_data_passes_with_exact_metrics(tmp_path: Path) -> None:
    root = tmp_path / "src"
    messy_dataset(root)
    add_clean_images(root)
    result, run_dir = run_stage1(tmp_path, root / "ds")
    assert result.exit_code == 0, result.output
    metrics = RunState.load(run_dir).stage("situation_analysis")["metrics"]
    images = (17 + 120) + 3 + (8 + 36)
    assert metrics["unreadable_fraction"] == pytest.approx(6 / (images + 6))
    assert metrics["leakage_fraction"] == pytest.approx(1 / 44)
    assert metrics["blocking_findings"] == 0
    findings = by_code(json.loads((run_dir / "01_situation_analysis" / "report.json").read_text())["findings"])
    assert findings["leakage_test"]["grade"] == "warning"
    assert findings["skipped_files"]["grade"] == "warning"


def test_class_only_in_test_is_refused_before_training(tmp_path: Path) -> None:
    root = tmp_path / "src"
    write_messy_tree(root)
    put(root, "ds/test/bird/b.png", rgb_png(99))
    result, run_dir = run_stage1(tmp_path, root / "ds")
    assert result.exit_code == 2
    assert "bird" in result.output and "Traceback" not in result.output
    state = RunState.load(run_dir)
    assert state.status == "failed" and state.stage("implementation")["status"] == "pending"


def test_not_an_archive_and_missing_path_exit_2(tmp_path: Path) -> None:
    fake = tmp_path / "data.tar.gz"
    fake.write_bytes(b"definitely not gzip")
    config = tmp_path / "c.yaml"
    for path, message in ((fake, "not a readable"), (tmp_path / "nowhere", "does not exist")):
        config.write_text(yaml.safe_dump({"data": {"source": "imagefolder", "path": str(path)}}))
        out = CliRunner().invoke(app, ["run", str(config), "--runs-dir", str(tmp_path / "runs")])
        assert out.exit_code == 2 and message in out.output, out.output
    assert not (tmp_path / "runs").exists()


def test_data_quality_gate_fails_the_run_on_leakage(tmp_path: Path) -> None:
    root = tmp_path / "src"
    messy_dataset(root)
    add_clean_images(root)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": "imagefolder", "path": str(root / "ds")},
        "gates": [{"name": "no leakage", "metric": "leakage_fraction", "op": "<=", "threshold": "1%",
                   "on_fail": {"max_attempts": 3}}]}))
    result = CliRunner().invoke(app, ["run", str(config), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1, result.output
    assert "no leakage" in result.output and "FAILED" in result.output
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    state = RunState.load(run_dir)
    assert state.data["failure"]["gate"] == "no leakage"
    assert state.data["failure"]["values"] == [pytest.approx(1 / 44)]
    assert state.stage("task_definition")["status"] == "pending"
    assert "no allowed remedy for data_quality" in state.data["failure"]["message"]
    assert state.data["adjustments"] == []  # no pointless loop-back through training
