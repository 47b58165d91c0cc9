"""Every command through Typer's CliRunner: happy paths, bad input (exit 2, no traceback)."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures"


def invoke(*args: str) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_init_writes_a_valid_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = invoke("init", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mle_star_config.yaml").exists()
    assert invoke("validate", tmp_path / "mle_star_config.yaml").exit_code == 0
    again = invoke("init", tmp_path)
    assert again.exit_code == 2 and "already exists" in again.output and "--force" in again.output


def test_validate_prints_gates_and_sample_project_warnings() -> None:
    result = invoke("validate", FIXTURES / "sample_project_config.yaml")
    assert result.exit_code == 0, result.output
    assert "gate 'min_val_accuracy' after implementation: val_accuracy at least 85%" in result.output
    assert "warning: hardware: not supported by mlestar; ignored" in result.output


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("training:\n  epochs: [1,\n", "not valid YAML at line"),
    ("training:\n  epochs: many\n", "training.epochs: Input should be a valid integer"),
    ("gates:\n  - metric: val_accuracy\n    threshold: 0.9\n    stage: 9_magic\n", "unknown stage '9_magic'"),
    ("gates:\n  - metric: accuracy_top3\n    threshold: 0.9\n", "no stage produces a metric named 'accuracy_top3'"),
    ("trainig:\n  epochs: 3\n", "did you mean 'training'?"),
])
def test_bad_configs_exit_2_with_one_clear_message(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    for command in ("validate", "run"):
        result = invoke(command, path, *(["--runs-dir", tmp_path / "runs"] if command == "run" else []))
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_missing_data_path_exits_2_before_any_run_folder(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "digits", "path": str(tmp_path / "nowhere")}}))
    result = invoke("run", path, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_stage_option_exits_2(tmp_path: Path) -> None:
    result = invoke("run", "--only", "stage_9", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "unknown stage" in result.output


def test_inspection_commands_on_a_finished_run(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    status = invoke("status", "--runs-dir", runs_dir)
    assert status.exit_code == 0 and run_id in status.output and "7/7" in status.output
    show = invoke("show", run_id[:12], "--runs-dir", runs_dir)
    assert show.exit_code == 0 and "implementation" in show.output and "passed" in show.output
    lineage = invoke("lineage", "latest", "model.pt", "--runs-dir", runs_dir)
    assert lineage.exit_code == 0 and "04_implementation/model.pt" in lineage.output
    audit = invoke("audit", run_id, "--runs-dir", runs_dir)
    assert audit.exit_code == 0 and "decision" in audit.output and "run_finished" in audit.output
    verify = invoke("audit", run_id, "--verify", "--runs-dir", runs_dir)
    assert verify.exit_code == 0 and "chain verified" in verify.output


def test_audit_verify_fails_on_a_hand_edit(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    path = runs_dir / run_id / "audit.jsonl"
    path.write_text(path.read_text().replace('"stage_passed"', '"stage_failed"', 1))
    result = invoke("audit", run_id, "--verify", "--runs-dir", runs_dir)
    assert result.exit_code == 1 and "record edited" in result.output


def test_unknown_run_exits_2(tmp_path: Path) -> None:
    result = invoke("show", "nope", "--runs-dir", tmp_path)
    assert result.exit_code == 2 and "cannot find run 'nope'" in result.output


def test_serve_refuses_a_tampered_bundle(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    bundle = runs_dir / run_id / "07_deployment" / "bundle"
    labels = bundle / "labels.json"
    labels.unlink()  # break the hard link before editing, as an editor's save would
    labels.write_text('["a", "b"]')
    result = invoke("serve", bundle, "--port", "0")
    assert result.exit_code == 2 and "labels.json" in result.output


def test_reproduce_matches_the_original(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    result = invoke("reproduce", run_id, "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    assert "within tolerance" in result.output and "test_accuracy" in result.output


def test_models_lists_the_registry_with_measured_costs() -> None:
    result = runner.invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert {"small_cnn", "airbench_xs", "airbench_s", "airbench", "airbench_l", "resnet18"} <= set(rows)
    assert "11,173,962" in rows["resnet18"] and "44.77 MB" in rows["resnet18"]
    assert "1,972,792" in rows["airbench"] and "7.91 MB" in rows["airbench"]  # the 8 MB bound


def test_models_rejects_a_bad_image_size() -> None:
    result = runner.invoke(app, ["models", "--image-size", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
