"""Model registry: ``@register_model``, ``create_model(name, ...)``, ``list_models()``."""

from mlestar.models import airbench, resnet, small_cnn  # noqa: F401  (importing registers their models)
from mlestar.models.registry import ModelInfo, create_model, count_params, list_models, model_info, register_model

__all__ = ["ModelInfo", "count_params", "create_model", "list_models", "model_info", "register_model"]
