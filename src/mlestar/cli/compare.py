"""``mlestar compare RUN RUN [RUN...]``: config and metric differences, as ``dvc params/metrics diff``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlestar.cli.common import RunsDir, console, guarded, resolve_runs_dir
from mlestar.cli.output import JsonFlag, print_json, print_rows


def register(app: typer.Typer) -> None:
    @app.command("compare")
    @guarded
    def compare_command(
        runs: Annotated[list[str], typer.Argument(help="two or more runs: id, unique prefix, or 'latest'; "
                                                       "the first is the base of each change")],
        show_all: Annotated[bool, typer.Option("--all", help="also list config keys and metrics that are equal")]
        = False,
        runs_dir: RunsDir = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Config values (dotted keys) and metrics that differ between runs; metric changes against the first."""
        from mlestar.workflow.compare import compare_runs
        from mlestar.workflow.inspect import find_run

        folder = resolve_runs_dir(runs_dir)
        report = compare_runs([find_run(folder, ref) for ref in runs], all_rows=show_all)
        if as_json:
            print_json(report)
            return
        ids = [run["run_id"] for run in report["runs"]]
        _print_config(report, ids)
        _print_metrics(report, ids)


def _print_config(report: dict[str, Any], ids: list[str]) -> None:
    """One row per dotted key: each run's value as JSON text, ``(absent)`` where its config lacks the key."""
    rows = [[row["key"], *("(absent)" if v is None else v for v in row["values"])] for row in report["config"]]
    differing = sum(row["differs"] for row in report["config"]) if report["all"] else len(rows)
    console.print(f"config: {differing} of {report['config_keys']} keys differ", markup=False)
    if rows:
        print_rows(("key", *ids), rows)


def _print_metrics(report: dict[str, Any], ids: list[str]) -> None:
    """One row per metric: each run's value, and for every run after the first its change against the first."""
    from mlestar.workflow.compare import format_delta

    columns = ["metric", ids[0]]
    for run_id in ids[1:]:
        columns += [run_id, f"change {run_id}"]
    rows = []
    for row in report["metrics"]:
        cells = [row["metric"], row["texts"][0]]
        for text, delta in zip(row["texts"][1:], row["deltas"][1:]):
            cells += [text, format_delta(delta, row["unit"])]
        rows.append(cells)
    differing = sum(row["differs"] for row in report["metrics"]) if report["all"] else len(rows)
    console.print(f"metrics: {differing} of {report['metric_names']} differ", markup=False)
    if rows:
        print_rows(columns, rows)
