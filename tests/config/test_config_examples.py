"""Every config shipped in examples/ validates (documented examples are tested)."""

from pathlib import Path

import pytest

from mlestar.config import load_config

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.config.project.name
