"""``mlestar models``: the model registry with each model's measured parameters, FLOPs and size."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlestar.cli.common import console, guarded
from mlestar.cli.output import JsonFlag, print_json


def register(app: typer.Typer) -> None:
    @app.command("models")
    @guarded
    def models_command(
        image_size: Annotated[int, typer.Option(min=4, help="input side in pixels")] = 32,
        channels: Annotated[int, typer.Option(min=1, help="input channels")] = 3,
        classes: Annotated[int, typer.Option(min=2, help="output classes")] = 10,
        as_json: JsonFlag = False,
    ) -> None:
        """List registered models, built at their default width for the given input."""
        from mlestar.workflow.reports import models_report

        report = models_report(image_size=image_size, channels=channels, classes=classes)
        if as_json:
            print_json(report)
            return
        table = Table("model", "width", "params", "GFLOPs/image", "fp32 size", "description")
        for row in report["models"]:
            table.add_row(row["name"], str(row["width"]), f"{row['params']:,}", f"{row['flops'] / 1e9:.3f}",
                          f"{row['size_bytes'] / 1e6:.2f} MB", row["description"])
        console.print(table)
