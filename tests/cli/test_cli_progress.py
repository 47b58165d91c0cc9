"""Progress bars: drawn with an ETA on a terminal, never into output that is not one (logs, pipes, CliRunner)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from image_trees import write_flat_tree
from mlestar.cli import common
from mlestar.cli.app import app
from mlestar.cli.common import ProgressBars

runner = CliRunner()
BAR_TRACES = ("━", "\x1b[", "\r")  # the bar's glyph, terminal escapes, carriage returns of a redrawn line


def drawn(text: str) -> bool:
    """True when ``text`` holds any trace of a progress bar (its glyph, escapes, the "eta" column)."""
    return any(trace in text for trace in BAR_TRACES) or re.search(r"\beta\b", text) is not None


def test_a_terminal_gets_a_bar_with_its_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    """The positive control of the test below: the same bars, forced onto a terminal, are drawn."""
    screen = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=screen, force_terminal=True, width=120))
    bars = ProgressBars()
    bars("decoding images", 1, 4)
    bars("decoding images", 4, 4)
    assert "decoding images" in screen.getvalue() and drawn(screen.getvalue())


def test_no_bar_is_drawn_when_output_is_not_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage 1 that decodes 24 images reports progress all the way, and CliRunner's output shows none of it."""
    calls: list[tuple[str, int, int]] = []
    draw = ProgressBars.__call__

    def recording(self: ProgressBars, label: str, done: int, total: int) -> None:
        calls.append((label, done, total))
        draw(self, label, done, total)

    monkeypatch.setattr(ProgressBars, "__call__", recording)
    folder = write_flat_tree(tmp_path / "images", {"a": 12, "b": 12})
    config = tmp_path / "images.yaml"
    config.write_text(yaml.safe_dump({"project": {"name": "bars"}, "data": {"source": "imagefolder",
                                                                           "path": str(folder)}}))
    result = runner.invoke(app, ["run", str(config), "--only", "situation_analysis",
                                 "--runs-dir", str(tmp_path / "runs")])
    assert ("decoding images", 24, 24) in calls, calls
    assert ("situation analysis: load, checks, probe, plots", 4, 4) in calls, calls
    assert not drawn(result.output), result.output
