"""Layers only import downward: a module needs only the layers below its own, never a sibling's internals.

The layers, top first (docs/architecture.md shows the same table):

    __main__                        python -m mlestar
    cli                             commands
    dashboard, interop              web UI over runs; the Python API and the MLflow export
    stages                          the seven stages (each may use stages.common, not another stage)
    workflow                        stage contract and registry, runner, cache, gates, state
    domains                         what differs by problem kind (tables: loading, column typing)
    tuning, deploy                  search; export, bundle, serving
    evaluation                      the test split read once, metrics, plots, efficiency
    training                        typed plan, fit loop, recipes, probes, DDP, torch settings
    data, models, tracking          datasets and preprocessing; model registry; lineage and audit
    config                          the typed schema, units, catalog
    utils, errors                   atomic I/O, faults, signals; the exception root

Every ``import`` counts, at the top of a file or inside a function (lazy
imports are still dependencies). Dynamic imports by name (the stage registry)
are not imports of code the importer depends on.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mlestar"
LAYERS = [("__main__",), ("cli",), ("dashboard", "interop"), ("stages",), ("workflow",), ("domains",),
          ("tuning", "deploy"), ("evaluation",), ("training",), ("data", "models", "tracking"), ("config",),
          ("utils", "errors", "__init__")]
RANK = {name: len(LAYERS) - index for index, names in enumerate(LAYERS) for name in names}


def package_of(path: Path, root: Path = SRC) -> str:
    return path.relative_to(root).parts[0].removesuffix(".py")


def mlestar_imports(path: Path, root: Path = SRC) -> list[tuple[int, str]]:
    """(line, module) of every absolute or relative import of an mlestar module in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = ".".join(("mlestar", *path.relative_to(root).with_suffix("").parts))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "mlestar"]


FILES = sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    packages = {package_of(p) for p in FILES}
    assert packages <= set(RANK), f"add {sorted(packages - set(RANK))} to LAYERS (and docs/architecture.md)"


def upward_imports(path: Path, root: Path = SRC) -> list[str]:
    """One line per import of ``path`` that does not go to a lower layer (or its own package)."""
    own = package_of(path, root)
    upward = []
    for line, module in mlestar_imports(path, root):
        target = module.split(".")[1] if "." in module else "__init__"
        if target != own and RANK[target] >= RANK[own]:
            upward.append(f"line {line}: {module} ({target} is not below {own})")
    return upward


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_go_down(path: Path) -> None:
    upward = upward_imports(path)
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", sorted((SRC / "stages").glob("s[0-9]_*.py")), ids=lambda p: p.name)
def test_a_stage_uses_no_other_stage(path: Path) -> None:
    others = [f"line {line}: {module}" for line, module in mlestar_imports(path)
              if module.startswith("mlestar.stages.") and module != "mlestar.stages.common"]
    assert not others, "move what two stages share to the layer below (or stages.common):\n" + "\n".join(others)


def test_the_layer_rule_catches_upward_and_sideways_imports(tmp_path: Path) -> None:
    (tmp_path / "training").mkdir()
    fake = tmp_path / "training" / "fake.py"
    fake.write_text("from mlestar.data import load_dataset\n"
                    "def f():\n    from mlestar.stages.common import checked_dataset\n"
                    "    from ..evaluation import metrics\n")
    assert upward_imports(fake, tmp_path) == [
        "line 3: mlestar.stages.common (stages is not below training)",
        "line 4: mlestar.evaluation (evaluation is not below training)"]
