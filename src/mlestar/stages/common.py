"""Helpers several stages share: the dataset record, tensors, Markdown tables."""

from __future__ import annotations

from typing import Any

from mlestar.data.dataset import ImageDataset, Preprocessing, differing_splits, split_hash
from mlestar.errors import StageError
from mlestar.workflow.stage import DATASET_REF, StageContext


def dataset_record(dataset: ImageDataset) -> dict[str, Any]:
    """What later stages need to know, and verify, about the data they train on."""
    return {
        "name": dataset.name, "fingerprint": dataset.fingerprint, "class_names": list(dataset.class_names),
        "image_shape": list(dataset.image_shape), "preprocessing": dataset.preprocessing().to_dict(),
        "splits": {name: {"size": len(split), "hash": split_hash(split)}
                   for name, split in (("train", dataset.train), ("val", dataset.val), ("test", dataset.test))},
        "notes": list(dataset.notes),
    }


def checked_dataset(ctx: StageContext) -> tuple[ImageDataset, Preprocessing]:
    """The run's dataset, verified against stage 1's record so no stage trains on other data."""
    record = ctx.read_json(DATASET_REF)
    dataset = ctx.dataset()
    for name in differing_splits(dataset, {n: s["hash"] for n, s in record["splits"].items()}):
        raise StageError(f"the {name} split differs from the one stage 1 analysed",
                         hint="the data changed under the run; start a new run")
    return dataset, Preprocessing.from_dict(record["preprocessing"])


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are escaped of pipes."""
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Steps:
    """Reports a stage's named steps as progress ``(label, done, total)``, so the CLI draws a bar with an ETA.

    Create it with the number of steps the stage will take (``ctx.progress`` gets
    ``done=0`` at once), call :meth:`advance` after each; :meth:`finish` reports
    ``done == total`` however many steps were skipped, which closes the bar.
    """

    def __init__(self, ctx: StageContext, label: str, total: int) -> None:
        self._ctx, self.label, self.total, self.done = ctx, label, total, 0
        ctx.progress(label, 0, total)

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more as done (never past ``total``)."""
        self.done = min(self.total, self.done + steps)
        self._ctx.progress(self.label, self.done, self.total)

    def finish(self) -> None:
        """Report the last step done, if it has not been."""
        if self.done < self.total:
            self.advance(self.total - self.done)
