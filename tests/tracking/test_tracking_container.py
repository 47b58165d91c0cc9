"""The serving recipe's text: requirements.txt pins, the Dockerfile, the image name, both wheel branches."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from bundle_recipe import check_dockerfile, parse_dockerfile
from packaging.requirements import Requirement

from mlestar.tracking import container
from mlestar.tracking import wheel as wheel_module
from mlestar.tracking.container import (Pin, dockerfile, image_name, installed_version, pins, requirements_txt,
                                        serving_recipe)

WHEEL = "mlestar-0.1.0-py3-none-any.whl"


def _requirements(text: str) -> dict[str, Requirement]:
    return {r.name: r for r in (Requirement(line) for line in text.splitlines()
                                if line and not line.startswith(("#", "./")))}


def test_pins_are_exact_or_at_least_the_installed_public_version(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "2.4.1+cu121" if name == "torch" else real(name))
    text = requirements_txt(pins(("torch", "numpy"), ("fastapi", "numpy")), wheel=WHEEL, mlestar_version="0.1.0")
    found = _requirements(text)
    assert list(found) == ["torch", "numpy", "fastapi"]  # numpy once, exact
    assert str(found["torch"].specifier) == "==2.4.1"  # a local build label would demand that one build
    assert str(found["fastapi"].specifier) == f">={real('fastapi')}"
    assert f"./wheels/{WHEEL}" in text.splitlines() and "mlestar" not in found


def test_a_package_not_installed_is_a_comment_not_a_requirement() -> None:
    text = requirements_txt([Pin("no-such-dist-here", True)], wheel=WHEEL, mlestar_version="0.1.0")
    assert "# no-such-dist-here: not installed where the bundle was written" in text
    assert installed_version("no-such-dist-here") is None and _requirements(text) == {}


def test_without_a_wheel_mlestar_is_pinned_and_the_source_named() -> None:
    text = requirements_txt([], wheel=None, mlestar_version="0.1.0",
                            mlestar_source="file:///dist/mlestar-0.1.0-py3-none-any.whl")
    assert str(_requirements(text)["mlestar"].specifier) == "==0.1.0"
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "installed from file:///dist/mlestar-0.1.0-py3-none-any.whl" in comments and "not on PyPI" in comments
    assert "./wheels/" not in text


def test_the_recipe_falls_back_to_a_pin_when_mlestar_has_no_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wheel_module, "source_root", lambda package=None: None)
    monkeypatch.setattr(container, "installed_from", lambda: "https://example.org/mlestar-0.1.0-py3-none-any.whl")
    recipe = serving_recipe(pins(("numpy",)), port=9000, project="p", run_id="r1")
    assert recipe.wheel is None
    assert "mlestar" in _requirements(recipe.requirements)
    assert "installed from https://example.org/mlestar-0.1.0-py3-none-any.whl" in recipe.requirements
    steps = parse_dockerfile(recipe.dockerfile)
    assert not any(args.startswith("wheels/") for keyword, args in steps if keyword == "COPY")
    check_dockerfile(recipe.dockerfile, 9000)
    assert "mlestar pinned by version" in recipe.card and "docker run --rm -p 9000:9000 p:r1" in recipe.card


def test_the_recipe_ships_the_wheel_when_there_is_a_source_tree() -> None:
    recipe = serving_recipe(pins(("numpy",)), port=8123, project="My Project!", run_id="20250101-abc")
    assert recipe.wheel is not None and f"./wheels/{recipe.wheel.name}" in recipe.requirements.splitlines()
    assert ("COPY", "wheels/ ./wheels/") in parse_dockerfile(recipe.dockerfile)
    assert check_dockerfile(recipe.dockerfile, 8123)[-1] == "8123"
    assert "docker build -t my-project:20250101-abc ." in recipe.card


def test_the_dockerfile_copies_and_installs_before_the_bundle(tmp_path: Path) -> None:
    steps = parse_dockerfile(dockerfile(port=8000, wheel=WHEEL, run_id="r"))
    keywords = [keyword for keyword, _ in steps]
    assert keywords == ["FROM", "ENV", "RUN", "WORKDIR", "COPY", "COPY", "RUN", "COPY", "USER", "EXPOSE",
                        "HEALTHCHECK", "CMD"]
    assert steps[2][1].startswith("useradd ") and steps[8][1] == "10001"


@pytest.mark.parametrize(("project", "run_id", "expected"), [
    ("tiny", "20250101-120000-tiny-ab12", "tiny:20250101-120000-tiny-ab12"),
    ("My  Project/ÄÖ", "Run:1 (copy)", "my-project:Run-1-copy-"),
    ("!!!", ".hidden", "mlestar-model:hidden"),
])
def test_image_names_follow_dockers_rules(project: str, run_id: str, expected: str) -> None:
    assert image_name(project, run_id) == expected


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM python:3.11-slim\n\nRUN a \\\n  && b\n# d\nCMD [\"x\"]\n"
    assert parse_dockerfile(text) == [("FROM", "python:3.11-slim"), ("RUN", "a    && b"), ("CMD", '["x"]')]
