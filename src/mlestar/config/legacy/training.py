"""Legacy ``training`` and ``model`` sections -> ``training.*``.

Both sample-project shapes are read: the CIFAR-10 project's nested form
(``optimizer: {type: Adam, learning_rate: 0.001, weight_decay: 0.0001}``,
``scheduler: {type: CosineAnnealingLR, T_max: 100}``, ``hyperparameters``,
``hardware``) and the older template's flat one (``optimizer: "adam"``,
``lr_scheduler: {type: step, ...}``, ``early_stopping``). Optimizers map onto
the ones training has (sgd, adam, adamw), schedules onto onecycle, cosine or
constant; a schedule with no equivalent becomes cosine, the closest smooth
decay, and says so. Settings mlestar computes itself (``T_max``) are warned.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.legacy.common import Handler, Translation, as_mapping, norm, number, to, walk
from mlestar.config.schema import TrainingConfig

# Registered model names (mlestar.models sits above config, so they are listed here;
# tests/config checks the list against the registry).
REGISTERED_MODELS = ("small_cnn", "airbench_xs", "airbench_s", "airbench", "airbench_l", "resnet18")
_SMALL_CNN_NAMES = {"cnn", "simplecnn", "basiccnn", "convnet", "simpleconvnet", "smallconvnet"}

_OPTIMIZERS = {"sgd": "sgd", "adam": "adam", "adamw": "adamw"}
_SCHEDULES = {
    "cosine": "cosine", "cosineannealing": "cosine", "cosineannealinglr": "cosine", "cosinedecay": "cosine",
    "onecycle": "onecycle", "onecyclelr": "onecycle",
    "constant": "constant", "none": "constant", "fixed": "constant",
}
# Schedules that warm up linearly then decay linearly: mlestar's onecycle, with its own 20% warm-up.
_LINEAR_WARMUP = {"linearwithwarmup", "linearwarmup", "warmuplinear", "linearschedulewithwarmup",
                  "triangular", "cycliclr"}
ONECYCLE_WARMUP = 0.2  # share of steps mlestar's onecycle spends warming up (training/optim.py)

_DEVICES = {"auto": "auto", "cudaifavailable": "auto", "gpuifavailable": "auto", "cpu": "cpu",
            "cuda": "cuda", "gpu": "cuda"}
_CROSS_ENTROPY = {"crossentropy", "crossentropyloss", "categoricalcrossentropy", "sparsecategoricalcrossentropy",
                  "ce", "softmaxcrossentropy"}

_KEEP_BEST = "mlestar trains every planned epoch and keeps the weights of the best epoch (validation accuracy)"
_TRAINING_WHY = {
    "early_stopping": f"no early stopping: {_KEEP_BEST}",
    "patience": f"no early stopping: {_KEEP_BEST}",
    "num_workers": "images are held as tensors in memory; there is no DataLoader to configure",
    "pin_memory": "images are held as tensors in memory; there is no DataLoader to configure",
    "gradient_clipping": "mlestar does not clip gradients",
    "gradient_clipping_value": "mlestar does not clip gradients",
    "max_grad_norm": "mlestar does not clip gradients",
    "grad_clip": "mlestar does not clip gradients",
    "gradient_accumulation": "mlestar has no gradient accumulation; lower training.batch_size instead",
    "gradient_checkpointing": "mlestar has no activation checkpointing",
    "num_gpus": "one device per process; use training.processes for data-parallel training",
    "benchmark": "mlestar decides cuDNN autotuning itself (see `deterministic`)",
    "cross_validation": "mlestar validates on one stratified split (data.val_fraction)",
    "hyperparameter_tuning": "the search is the top-level hyperparameter_tuning (mlestar: refinement) section",
    "model_selection": "stage 6 selects by validation accuracy",
}


def translate_training(tr: Translation, value: Any, path: str) -> None:
    """A legacy ``training`` section, or one nested in it (``hyperparameters``, ``hardware``)."""
    walk(tr, value, path, _TRAINING_HANDLERS, _training_key)


def _training_key(tr: Translation, key: str, item: Any, path: str) -> None:
    """A key with no handler: an mlestar training field passes through, anything else is warned."""
    if key in TrainingConfig.model_fields:
        tr.put(f"training.{key}", item, path)
    else:
        tr.warn(path, _TRAINING_WHY.get(key, "not a training setting mlestar has; ignored"))


def optimizer_name(raw: Any) -> tuple[str | None, str | None]:
    """``(mlestar optimizer, why it is only the closest one)``; ``(None, None)`` when none fits."""
    key = norm(raw)
    if key in _OPTIMIZERS:
        return _OPTIMIZERS[key], None
    for family, torch_name in (("adamw", "AdamW"), ("adam", "Adam")):  # nadam, radam, paged_adamw_8bit, ...
        if family in key:
            return family, f"{raw!r} is a variant of {torch_name}; torch.optim.{torch_name} is used instead"
    return None, None


def _optimizer(tr: Translation, value: Any, path: str) -> None:
    """``optimizer: adam`` or ``optimizer: {type: Adam, learning_rate: ..., weight_decay: ...}``."""
    if not isinstance(value, dict):
        _optimizer_type(tr, value, path)
        return
    kind_key = next((k for k in ("type", "name") if k in value), None)
    chosen = _optimizer_type(tr, value[kind_key], f"{path}.{kind_key}") if kind_key else None
    for key, item in value.items():
        if key != kind_key and item is not None:
            _optimizer_option(tr, chosen, str(key), item, f"{path}.{key}")


def _optimizer_type(tr: Translation, raw: Any, path: str) -> str | None:
    """Map the optimizer's name; returns the mlestar optimizer, or None when it stays the default."""
    name, approx = optimizer_name(raw)
    if name is None:
        tr.warn(path, f"no optimizer {raw!r} in mlestar (sgd, adam, adamw); training.optimizer is not set, "
                      "so it stays sgd (Nesterov)")
        return None
    tr.put("training.optimizer", name, path)
    if approx:
        tr.warn(path, approx)
    return name


def _optimizer_option(tr: Translation, chosen: str | None, key: str, item: Any, path: str) -> None:
    """One option of an optimizer block: rate and decay map; torch defaults pass; the rest is warned."""
    if key in ("learning_rate", "lr"):
        tr.put("training.learning_rate", item, path)
    elif key == "weight_decay":
        tr.put("training.weight_decay", item, path)
    elif key == "momentum" and chosen in ("sgd", None):
        tr.put("training.momentum", item, path)
    elif _is_torch_default(key, item, chosen):
        return  # the value training uses anyway: honoured, nothing dropped
    else:
        tr.warn(path, f"mlestar's {chosen or 'sgd'} takes learning_rate, weight_decay"
                      f"{' and momentum' if chosen in ('sgd', None) else ''}; {key}={item!r} is not available "
                      "(torch's defaults are used)")


def _is_torch_default(key: str, item: Any, chosen: str | None) -> bool:
    """Options whose value is what mlestar's optimizer uses anyway (torch's defaults, Nesterov SGD)."""
    if key == "betas" and isinstance(item, (list, tuple)) and len(item) == 2:
        return [number(b) for b in item] == [0.9, 0.999]
    if key in ("eps", "epsilon"):
        return number(item) == 1e-8
    if key == "amsgrad":
        return item is False
    return key == "nesterov" and item is True and chosen in ("sgd", None)


def _scheduler(tr: Translation, value: Any, path: str) -> None:
    """``scheduler: cosine`` or ``scheduler: {type: CosineAnnealingLR, T_max: 100, eta_min: 0}``."""
    if not isinstance(value, dict):
        _schedule_type(tr, value, path)
        return
    kind_key = next((k for k in ("type", "name") if k in value), None)
    if kind_key is None:
        tr.warn(path, "no `type` names the schedule; training.schedule is not set")
        return
    raw = value[kind_key]
    chosen = _schedule_type(tr, raw, f"{path}.{kind_key}")
    for key, item in value.items():
        if key != kind_key and item is not None:
            _schedule_option(tr, chosen, raw, str(key), item, f"{path}.{key}")


def _schedule_type(tr: Translation, raw: Any, path: str) -> str | None:
    """Map a schedule's name onto onecycle, cosine or constant; returns what was set."""
    key = norm(raw)
    if key in _SCHEDULES:
        tr.put("training.schedule", _SCHEDULES[key], path)
        return _SCHEDULES[key]
    if key in _LINEAR_WARMUP:
        tr.put("training.schedule", "onecycle", path)
        tr.warn(path, f"{raw!r}: mlestar's onecycle (linear warm-up over {ONECYCLE_WARMUP:.0%} of the steps, then "
                      "linear decay to 0) is used instead")
        return "onecycle"
    if key:
        tr.put("training.schedule", "cosine", path)
        restarts = "restarts" in key
        tr.warn(path, f"{raw!r} has no equivalent in mlestar; training.schedule: cosine (one smooth decay from "
                      f"learning_rate to 0 over the whole run{', without restarts' if restarts else ''}) is used "
                      "instead")
        return "cosine"
    return None


def _schedule_option(tr: Translation, chosen: str | None, raw: Any, key: str, item: Any, path: str) -> None:
    """A parameter of a schedule block: what mlestar computes itself, or what it cannot honour, is warned."""
    if chosen == "onecycle" and key == "max_lr":
        tr.put("training.learning_rate", item, path)  # onecycle's peak is mlestar's learning_rate
    elif chosen == "cosine" and key == "eta_min" and number(item) == 0.0:
        return  # mlestar's cosine ends at 0: honoured
    elif key in ("T_max", "t_max", "total_steps", "epochs", "steps_per_epoch", "num_training_steps", "last_epoch"):
        tr.warn(path, "mlestar computes the schedule's length itself: it spans every planned step "
                      "(epochs x steps per epoch)")
    elif chosen == "cosine" and key == "eta_min":
        tr.warn(path, f"mlestar's cosine decays to 0, not to {item!r}")
    elif chosen == "onecycle" and key in ("pct_start", "warmup_ratio", "warmup_steps", "warmup", "warmup_fraction"):
        tr.warn(path, f"mlestar's onecycle warms up over {ONECYCLE_WARMUP:.0%} of the steps, not {item!r}")
    elif norm(raw) in _SCHEDULES:
        tr.warn(path, f"mlestar's {chosen} schedule has no {key} setting; ignored")
    else:
        tr.warn(path, f"{key} belongs to {raw!r}, which mlestar replaces by its {chosen or 'default'} schedule; "
                      "ignored")


def translate_device(tr: Translation, value: Any, path: str) -> None:
    """``cuda_if_available`` -> auto, ``gpu`` -> cuda, ``cpu`` -> cpu."""
    key = norm(value)
    device = _DEVICES.get(key) or ("cuda" if key.startswith("cuda") else None)
    if device is None:
        tr.warn(path, f"mlestar trains on cpu or cuda; {value!r} is not available, training.device stays auto")
        return
    tr.put("training.device", device, path)
    if device == "cuda" and key not in _DEVICES:
        tr.warn(path, f"{value!r}: the device index is not kept; torch's current CUDA device is used")


def translate_cuda_available(tr: Translation, value: Any, path: str) -> None:
    """The template's ``environment.cuda_available``: false trains on the CPU, true on CUDA."""
    tr.put("training.device", "cuda" if value else "cpu", path)


def _mixed_precision(tr: Translation, value: Any, path: str) -> None:
    """False -> fp32; true keeps ``auto``, which stage 2 resolves for the hardware."""
    if value is False:
        tr.put("training.precision", "fp32", path)
    else:
        tr.warn(path, "training.precision stays auto: stage 2 picks bf16 where the hardware runs it fast, else "
                      "fp32 (set training.precision: fp16 or bf16 to force one)")


def _loss(tr: Translation, value: Any, path: str) -> None:
    """Cross-entropy is what mlestar trains with; any other loss is warned."""
    if norm(value) not in _CROSS_ENTROPY:
        tr.warn(path, f"mlestar trains with softmax cross-entropy over the classes, not {value!r} "
                      "(training.label_smoothing softens it)")


def _memory_limit(tr: Translation, value: Any, path: str) -> None:
    """A memory cap becomes the peak-memory constraint the planner and gates can use."""
    tr.put("constraints.max_peak_memory", value, path)


def _distributed(tr: Translation, value: Any, path: str) -> None:
    """``distributed: {enabled, world_size, backend}`` -> ``training.processes``."""
    section = as_mapping(tr, value, path) or {}
    enabled = bool(section.get("enabled", False))
    for key, item in section.items():
        if key == "enabled" or item is None:
            continue
        if key in ("world_size", "num_processes", "processes") and enabled:
            tr.put("training.processes", item, f"{path}.{key}")
        elif key in ("world_size", "num_processes", "processes"):
            tr.warn(f"{path}.{key}", "distributed training is not enabled; one process is used")
        else:
            tr.warn(f"{path}.{key}", "mlestar chooses the process-group backend and launcher itself (torchrun)")


def model_name(raw: Any) -> tuple[str | None, str | None]:
    """``(registered model, why it is only the closest one)`` for a legacy architecture name."""
    key = norm(raw)
    exact = {norm(name): name for name in (*REGISTERED_MODELS, "auto")}
    if key in exact:
        return exact[key], None
    if "resnet" in key:
        return "resnet18", f"no {raw!r} in mlestar; the closest registered model, resnet18 (CIFAR ResNet-18), is used"
    if key in _SMALL_CNN_NAMES:
        return "small_cnn", f"{raw!r}: the registered small_cnn (2-3 conv blocks and a global pool) is used"
    return None, None


def _model_choice(tr: Translation, value: Any, path: str) -> None:
    """``model.architecture`` / ``model.type`` -> ``training.model`` where a registered model fits."""
    name, approx = model_name(value)
    chosen = tr.get("training.model")
    if name is None:
        now = (f"training.model is {chosen!r} from {tr.origin['training.model']}" if chosen else
               "training.model stays auto (stage 3 picks one for the images and the time budget)")
        tr.warn(path, f"{value!r} is not a registered model ({', '.join(REGISTERED_MODELS)}); {now}")
    elif chosen is not None and chosen != name:
        tr.warn(path, f"training.model is already {chosen!r} from {tr.origin['training.model']}; {value!r} "
                      f"({name}) ignored")
    elif tr.put("training.model", name, path) and approx:
        tr.warn(path, approx)


def _framework(tr: Translation, value: Any, path: str) -> None:
    if norm(value) not in ("pytorch", "torch"):
        tr.warn(path, f"mlestar trains PyTorch models; {value!r} is not used")


_FIXED_LAYERS = "registered models have fixed layers; choose one with training.model (and training.width)"
_MODEL_WHY = {
    "num_classes": "mlestar counts the classes in the data",
    "output_classes": "mlestar counts the classes in the data",
    "input_shape": "mlestar reads the image shape from the data (data.image_size to resize)",
    "hidden_layers": _FIXED_LAYERS, "activation": _FIXED_LAYERS, "dropout_rate": _FIXED_LAYERS,
    "dropout": _FIXED_LAYERS, "components": _FIXED_LAYERS, "freeze_bert": _FIXED_LAYERS,
    "model_save_path": "models and checkpoints are written into the run folder (project.runs_dir)",
    "checkpoint_path": "models and checkpoints are written into the run folder (project.runs_dir)",
    "save_best_only": _KEEP_BEST,
    "estimated_params": "descriptive; stage 3 reports the planned model's parameters",
    "model_size": "descriptive; stage 5 measures the model's size",
}


def translate_model(tr: Translation, value: Any, path: str) -> None:
    """A legacy ``model`` section: the architecture picks ``training.model``; layer settings are warned."""
    walk(tr, value, path, _MODEL_HANDLERS, _model_key)


def _model_key(tr: Translation, key: str, item: Any, path: str) -> None:
    if key == "width":
        tr.put("training.width", item, path)
    else:
        tr.warn(path, _MODEL_WHY.get(key, "descriptive only; ignored"))


_MODEL_HANDLERS: dict[str, Handler] = {
    "architecture": _model_choice, "type": _model_choice, "name": _model_choice, "model_name": _model_choice,
    "base_architecture": _model_choice, "framework": _framework, "parameters": translate_model,
}

_TRAINING_HANDLERS: dict[str, Handler] = {
    "optimizer": _optimizer, "scheduler": _scheduler, "lr_scheduler": _scheduler, "schedule": _scheduler,
    "lr_schedule": _scheduler, "hyperparameters": translate_training, "hardware": translate_training,
    "advanced": translate_training, "reproducibility": translate_training, "training_execution": translate_training,
    "distributed": _distributed, "device": translate_device, "device_preference": translate_device,
    "mixed_precision": _mixed_precision,
    "loss": _loss, "loss_function": _loss, "lr": to("training.learning_rate"),
    "num_epochs": to("training.epochs"), "seed": to("seed"), "deterministic": to("deterministic"),
    "cpu_cores": to("training.num_threads"), "memory_limit": _memory_limit, "model": _model_choice,
}
