"""``-S KEY=VALUE``: parsed as YAML, applied before validation, validated like the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlestar.config import default_config, load_config, parse_overrides
from mlestar.config.overrides import apply_overrides, parse_override
from mlestar.errors import ConfigError


@pytest.mark.parametrize("arg, key, value", [
    ("training.epochs=3", "training.epochs", 3),
    ("deterministic=true", "deterministic", True),
    ("deployment.formats=[onnx, torchscript]", "deployment.formats", ["onnx", "torchscript"]),
    ("deployment.alerts.max_error_rate=90%", "deployment.alerts.max_error_rate", "90%"),
    ('project.name="a=b"', "project.name", "a=b"),  # split at the first '='
    ("training.num_threads=", "training.num_threads", None),  # empty: YAML null
])
def test_values_are_read_as_yaml(arg: str, key: str, value: object) -> None:
    override = parse_override(arg)
    assert (override.key, override.value) == (key, value)


@pytest.mark.parametrize("arg", ["training.epochs", "=3", "training..epochs=3", "x=[1,"])
def test_malformed_overrides_are_refused_with_the_form(arg: str) -> None:
    with pytest.raises(ConfigError, match="-S") as err:
        parse_override(arg)
    assert "KEY=VALUE" in (err.value.hint or "") or "quote" in (err.value.hint or "")


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "training": {"epochs": 8}, "gates": [
        {"metric": "val_accuracy", "threshold": 0.5}]}))
    return path


def test_overrides_change_the_validated_config_and_the_hash(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    plain = load_config(path)
    loaded = load_config(path, parse_overrides(["training.epochs=3", "seed=1", "gates.0.threshold=90%",
                                                "deployment.alerts.max_error_rate=2%"]))
    cfg = loaded.config
    assert (cfg.training.epochs, cfg.seed, cfg.gates[0].threshold) == (3, 1, 0.9)
    assert cfg.deployment.alerts.max_error_rate == pytest.approx(0.02)  # units parsed as in the file
    assert [str(o) for o in loaded.overrides] == ["training.epochs=3", "seed=1", "gates.0.threshold=90%",
                                                  "deployment.alerts.max_error_rate=2%"]
    assert loaded.hash != plain.hash
    assert load_config(path, parse_overrides(["training.epochs=8"])).hash == plain.hash  # same value, same hash


def test_a_later_override_wins(tmp_path: Path) -> None:
    cfg = load_config(config_file(tmp_path), parse_overrides(["seed=1", "seed=2"])).config
    assert cfg.seed == 2


def test_an_unknown_key_gets_its_path_and_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path), parse_overrides(["training.epoch=3"]))
    assert "training.epoch: unknown key; did you mean 'epochs'?" in err.value.message
    assert "with -S training.epoch=3" in err.value.message


def test_a_bad_value_gets_the_fields_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.epochs: Input should be greater than or equal to 1"):
        load_config(config_file(tmp_path), parse_overrides(["training.epochs=0"]))
    with pytest.raises(ConfigError, match=r"constraints\.max_training_time: .*"):
        load_config(config_file(tmp_path), parse_overrides(["constraints.max_training_time=soon"]))


@pytest.mark.parametrize("arg, message", [
    ("seed.value=1", "seed is a value (0), not a section"),
    ("gates.3.threshold=0.9", "'3' is not a position in a list of 1 item(s)"),
    ("gates.first.threshold=0.9", "'first' is not a position"),
])
def test_paths_through_values_and_lists_are_checked(tmp_path: Path, arg: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(config_file(tmp_path), parse_overrides([arg]))


def test_missing_sections_are_created_and_the_input_is_not_changed() -> None:
    raw = {"seed": 0}
    out = apply_overrides(raw, parse_overrides(["refinement.search_space.momentum.type=float"]))
    assert out == {"seed": 0, "refinement": {"search_space": {"momentum": {"type": "float"}}}}
    assert raw == {"seed": 0}


def test_override_paths_resolve_against_the_working_directory(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)  # typed on the command line: relative to where it was typed
    loaded = load_config(config_file(tmp_path / "sub"),
                         parse_overrides(["data.source=imagefolder", "data.path=imgs"]))
    assert loaded.config.data.path == tmp_path / "imgs"


def test_the_embedded_default_takes_overrides_too() -> None:
    loaded = default_config(parse_overrides(["training.epochs=2"]))
    assert (loaded.config.data.source, loaded.config.training.epochs) == ("digits", 2)
    with pytest.raises(ConfigError, match="the embedded default with -S trainig.epochs=2"):
        default_config(parse_overrides(["trainig.epochs=2"]))
