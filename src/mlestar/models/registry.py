"""A timm-style model registry.

Each entry is a factory ``fn(num_classes, in_channels, image_size, width) -> nn.Module``
plus facts the planner needs (default width, which image sizes it suits). Tests
are parametrized over :func:`list_models`, so a new model is tested for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from mlestar.config.catalog import suggest
from mlestar.errors import StageError

ModelFn = Callable[[int, int, int, int], nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model without building it.

    Attributes:
        name: registry key.
        fn: factory ``(num_classes, in_channels, image_size, width) -> nn.Module``.
        default_width: base channel count when the config gives none.
        min_image_size: smallest input side it handles (pooling depth).
        description: one line for plans and reports.
    """

    name: str
    fn: ModelFn
    default_width: int
    min_image_size: int
    description: str


_MODELS: dict[str, ModelInfo] = {}


def register_model(name: str, *, default_width: int, min_image_size: int, description: str
                   ) -> Callable[[ModelFn], ModelFn]:
    """Decorator registering a model factory under ``name``."""

    def wrap(fn: ModelFn) -> ModelFn:
        _MODELS[name] = ModelInfo(name, fn, default_width, min_image_size, description)
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def model_info(name: str) -> ModelInfo:
    """Registry entry for ``name``; raises :class:`StageError` with a suggestion."""
    if name not in _MODELS:
        raise StageError(f"unknown model {name!r}{suggest(name, list(_MODELS))}",
                         hint=f"registered models: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                 width: int | None = None) -> nn.Module:
    """Build a registered model; ``width=None`` uses the model's default width."""
    info = model_info(name)
    if image_size < info.min_image_size:
        raise StageError(f"model {name!r} needs images of at least {info.min_image_size}px, got {image_size}px")
    return info.fn(num_classes, in_channels, image_size, width or info.default_width)


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
