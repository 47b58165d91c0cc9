"""``mlestar models``: the model registry with each model's measured parameters, FLOPs and size."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlestar.cli.common import console, guarded


def register(app: typer.Typer) -> None:
    @app.command("models")
    @guarded
    def models_command(
        image_size: Annotated[int, typer.Option(min=4, help="input side in pixels")] = 32,
        channels: Annotated[int, typer.Option(min=1, help="input channels")] = 3,
        classes: Annotated[int, typer.Option(min=2, help="output classes")] = 10,
    ) -> None:
        """List registered models, built at their default width for the given input."""
        from mlestar.evaluation.model_summary import summarize_all  # torch: only for this command

        table = Table("model", "width", "params", "GFLOPs/image", "fp32 size", "description")
        for row in summarize_all(image_size=image_size, in_channels=channels, num_classes=classes):
            table.add_row(row.name, str(row.width), f"{row.params:,}", f"{row.flops / 1e9:.3f}",
                          f"{row.size_bytes / 1e6:.2f} MB", row.description)
        console.print(table)
