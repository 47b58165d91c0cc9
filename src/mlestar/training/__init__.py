"""Training: device and precision choice, tensor augmentation, the fit loop, checkpoints."""

from mlestar.training.checkpoint import load_model_file, save_model_file
from mlestar.training.loop import EpochCallback, FitResult, evaluate_logits, fit, split_to_tensors
from mlestar.training.spec import TrainSpec
from mlestar.training.precision import choose_device, choose_precision

__all__ = ["EpochCallback", "FitResult", "TrainSpec", "choose_device", "choose_precision", "evaluate_logits",
           "fit", "load_model_file", "save_model_file", "split_to_tensors"]
