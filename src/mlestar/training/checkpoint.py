"""Save and load model files and training checkpoints atomically.

``torch.save`` goes to memory first, then :func:`atomic_write_bytes`, so a
kill mid-save leaves the previous checkpoint intact (as timm does with its
temp-file-then-rename).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlestar.errors import TrainingError
from mlestar.models import create_model
from mlestar.utils.io import atomic_write_bytes


def save_torch(obj: Any, path: Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: Path) -> Any:
    """Load a file written by :func:`save_torch` (CPU tensors)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise TrainingError(f"cannot read {path}: {exc}", hint="re-run the stage that wrote it") from None


def save_model_file(path: Path, model: nn.Module, *, architecture: dict[str, Any],
                    preprocessing: dict[str, Any], class_names: list[str]) -> Path:
    """Write weights plus everything needed to rebuild the model and feed it.

    ``architecture`` holds the :func:`create_model` arguments (name, num_classes,
    in_channels, image_size, width).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_torch({"architecture": architecture, "state_dict": state, "preprocessing": preprocessing,
                       "class_names": class_names}, path)


def load_model_file(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved by :func:`save_model_file`; returns ``(model in eval mode, payload)``."""
    payload = load_torch(path)
    arch = dict(payload["architecture"])
    model = create_model(arch.pop("name"), **arch)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
