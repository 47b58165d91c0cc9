"""`mlestar init`'s starter names every key of the schema, each with a comment, and still runs as before.

The schema is walked (config.keys.schema_keys, from MlestarConfig down): a key added to the schema
without a starter entry, or an entry without a comment, fails here.
"""

from importlib import resources
from pathlib import Path

import pytest
import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from mlestar.config import build_config, config_hash, load_config
from mlestar.config.keys import schema_keys, unit_keys

STARTER = resources.files("mlestar.config").joinpath("starter.yaml").read_text(encoding="utf-8")
TABLE_MARKER = "# --- For a table, replace the `data` section above with this one:"

SECTIONS = {k.path for k in schema_keys() if k.section}
# Sections whose keys are the user's names (search_space: parameter -> spec): their entries step as '*'.
NAMED_ENTRIES = {k.path.split(".*.")[0] for k in schema_keys() if ".*." in k.path}


def _has_comment(line: str) -> bool:
    return " #" in line or line.lstrip().startswith("#")


def _walk(node: Node, path: str, lines: list[str], found: dict[str, str]) -> None:
    """Record ``dotted path -> the comment-bearing line`` (or '' when uncommented) for every key below ``node``."""
    if isinstance(node, SequenceNode):
        for item in node.value:
            _walk(item, f"{path}[]", lines, found)
        return
    if not isinstance(node, MappingNode):
        return
    for key_node, value_node in node.value:
        name = "*" if path in NAMED_ENTRIES else key_node.value
        child = f"{path}.{name}" if path else name
        line = lines[key_node.start_mark.line]
        if not found.get(child):
            found[child] = line if _has_comment(line) else ""
        if child in SECTIONS or path in NAMED_ENTRIES:
            _walk(value_node, child, lines, found)


def table_block(text: str) -> str:
    """The commented-out table ``data`` section at the end of the starter, uncommented."""
    tail = text.split(TABLE_MARKER, 1)[1].splitlines()[1:]
    return "\n".join(line[2:] for line in tail if line.startswith("# ")) + "\n"


def documented_keys(text: str) -> dict[str, str]:
    """Every key the starter writes (and its commented table block), with its commented line."""
    found: dict[str, str] = {}
    for part in (text, table_block(text)):
        _walk(yaml.compose(part), "", part.splitlines(), found)
    return found


def starter_gaps(text: str) -> tuple[list[str], list[str]]:
    """Schema keys the starter lacks, and those it writes without a comment."""
    found = documented_keys(text)
    wanted = list(dict.fromkeys(k.path for k in schema_keys()))
    return [p for p in wanted if p not in found], [p for p in wanted if p in found and not found[p]]


def test_every_schema_key_is_in_the_starter_with_a_comment() -> None:
    missing, uncommented = starter_gaps(STARTER)
    assert missing == [], f"add these keys to src/mlestar/config/starter.yaml: {missing}"
    assert uncommented == [], f"comment these keys in src/mlestar/config/starter.yaml: {uncommented}"


def test_the_check_fails_on_a_missing_key_or_a_missing_comment() -> None:
    without_key = STARTER.replace("  max_peak_memory: null", "  # (removed)")
    assert starter_gaps(without_key)[0] == ["constraints.max_peak_memory"]
    line = next(x for x in STARTER.splitlines() if x.startswith("#   max_rows:"))
    without_comment = STARTER.replace(line, "#   max_rows: null")
    assert starter_gaps(without_comment) == ([], ["data.max_rows"])


@pytest.mark.parametrize("key", [k for k in unit_keys()], ids=lambda k: k.path)
def test_unit_keys_say_their_unit(key) -> None:  # noqa: ANN001  (SchemaKey)
    words = {"metric": "metric's unit", "duration": "duration", "latency": "latency", "size": "size",
             "fraction": "fraction"}
    comment = documented_keys(STARTER)[key.path].split("#", 1)[1]
    assert words[key.unit] in comment, f"{key.path}: say in its comment that it is a {key.unit}"


def test_the_starter_is_the_defaults_plus_its_choices() -> None:
    """Writing every key out changed nothing: `mlestar run` on the starter runs what it ran before."""
    loaded = load_config(Path(str(resources.files("mlestar.config").joinpath("starter.yaml"))))
    assert loaded.warnings == []
    choices = build_config({
        "project": {"name": "my-project", "runs_dir": str(loaded.config.project.runs_dir)},  # resolved by load
        "task": {"primary_metric": "test_accuracy", "secondary_metrics": ["macro_f1", "latency_p95"],
                 "targets": {"test_accuracy": "95%"}},
        "constraints": {"max_training_time": "10 minutes", "max_model_size": "50MB", "max_inference_latency": "50ms"},
        "gates": [{"metric": "val_accuracy", "op": ">=", "threshold": "90%",
                   "on_fail": {"return_to": "action_planning", "max_attempts": 3}},
                  {"metric": "model_size", "op": "<=", "threshold": "50MB"}],
        "deployment": {"max_quantized_accuracy_drop": "1%", "serve": {"max_upload_size": "10MB"}},
    })
    assert config_hash(loaded.config) == config_hash(choices)


def test_the_table_block_replaces_data_into_a_valid_table_config() -> None:
    raw = yaml.safe_load(STARTER)
    raw["data"] = yaml.safe_load(table_block(STARTER))["data"]
    config = build_config(raw)
    assert (config.domain, config.data.dataset, config.data.val_fraction) == ("tables", "breast_cancer", 0.15)
