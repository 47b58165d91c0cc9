"""The exported JSON Schema is valid, accepts every shipped example and refuses what validation refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mlestar.config.json_schema import config_json_schema
from mlestar.config.legacy import is_legacy, translate_legacy

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # raises SchemaError on a malformed schema
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, raw: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(raw)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    if is_legacy(raw):  # sample-project formats: the schema describes what they translate to
        raw, _ = translate_legacy(raw, source=str(path))
    assert errors(validator, raw) == []


def test_fields_carry_their_descriptions_and_units_accept_strings() -> None:
    schema = config_json_schema()
    training_time = schema["$defs"]["ConstraintsConfig"]["properties"]["max_training_time"]
    assert training_time["description"].startswith("training time of stage 4, e.g. '4h'")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("raw, where", [
    ({"trainig": {"epochs": 3}}, ""),  # unknown key: additionalProperties is false
    ({"training": {"optimizer": "rmsprop"}}, "training.optimizer"),
    ({"training": {"epochs": "many"}}, "training.epochs"),
    ({"data": {"source": "table", "path": "t.csv", "image_size": 32}}, "data"),  # an image key in a table
    ({"data": {"source": "netcdf"}}, "data"),
])
def test_what_validation_refuses_the_schema_flags(validator: jsonschema.Draft202012Validator,
                                                  raw: dict[str, Any], where: str) -> None:
    found = errors(validator, raw)
    assert found and found[0].startswith(f"{where}:"), found


def test_both_data_shapes_are_accepted(validator: jsonschema.Draft202012Validator) -> None:
    assert errors(validator, {"data": {"source": "table", "dataset": "iris", "max_rows": 100}}) == []
    assert errors(validator, {"data": {"source": "imagefolder", "path": "x", "val_fraction": 0.2}}) == []
    assert errors(validator, {"refinement": {"search_space": {"momentum": {
        "type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}}}}}) == []
