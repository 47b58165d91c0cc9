"""What each registered model costs, measured by building it: parameters, FLOPs, fp32 size."""

from __future__ import annotations

from dataclasses import dataclass

from mlestar.evaluation.efficiency import count_flops, model_size_bytes, num_params
from mlestar.models.registry import create_model, list_models, model_info


@dataclass(frozen=True)
class ModelSummary:
    """One model at one input shape: ``flops`` per image (conv and linear, 2 per multiply-add)."""

    name: str
    description: str
    width: int
    params: int
    flops: int
    size_bytes: int


def summarize(name: str, *, image_size: int = 32, in_channels: int = 3, num_classes: int = 10,
              width: int | None = None) -> ModelSummary:
    """Build ``name`` at its default (or the given) width and measure it; raises StageError for unknown names."""
    info = model_info(name)
    model = create_model(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, width=width)
    return ModelSummary(name, info.description, width or info.default_width, num_params(model),
                        count_flops(model, (in_channels, image_size, image_size)), model_size_bytes(model))


def summarize_all(**shape: int) -> list[ModelSummary]:
    """:func:`summarize` for every registered model whose minimum image size the shape meets."""
    size = shape.get("image_size", 32)
    return [summarize(name, **shape) for name in list_models() if model_info(name).min_image_size <= size]
