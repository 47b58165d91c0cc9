"""Training recipes: every hyperparameter of a recipe in one place, with units.

``airbench`` is the recipe of Keller Jordan's airbench94 (94% on CIFAR-10 in
3.3 s on an A100), re-expressed for a mean-reduced loss: airbench sums the
loss over the batch and divides its learning rate by a "kilostep scale"
(1024 * (1 + 1 / (1 - momentum)) = 7850); multiplying by the batch size gives
the same steps for the mean. ``plain`` is a conventional recipe for small
images and the small CNN.
"""

from __future__ import annotations

from typing import Any, Literal

RecipeName = Literal["airbench", "plain"]  # the hyperparameter families below
KILOSTEP_SCALE = 1024 * (1 + 1 / (1 - 0.85))  # airbench's normaliser at momentum 0.85

AIRBENCH: dict[str, Any] = {
    "batch_size": 1024,                         # images per step on a GPU
    "cpu_batch_size": 256,                      # on a CPU: same images/s, 4x the steps per epoch, which
                                                # short CPU budgets (a few epochs) need
    "epochs": 10,                               # airbench94 uses 9.9; the planner fits this to the budget
    "optimizer": "sgd",                         # Nesterov
    "momentum": 0.85,
    "lr_per_image": 11.5 / KILOSTEP_SCALE,      # peak learning rate per image in the batch (mean loss)
    "weight_decay": 0.0153 / 11.5,              # torch SGD's coupled decay (1.33e-3): lr x this is airbench's
                                                # per-step shrink, 0.0153 x batch / KILOSTEP_SCALE
    "bias_lr_scale": 64.0,                      # BN shifts and biases: 64x the learning rate, 1/64 the decay
    "label_smoothing": 0.2,                     # share of target mass spread over all classes
    "schedule": "triangular",                   # 0.2 -> 1.0 over the first 23% of steps, then -> 0.07
    "warmup_fraction": 0.23,
    "final_lr_fraction": 0.07,
    "augmentation": "flip_translate",
    "translate_pad": 2,                         # pixels, reflect padding
    "alternating_flip": True,                   # each image mirrored in every other epoch
    "lookahead_every": 5,                       # steps between slow-weight blends
    "lookahead_alpha": 0.95,
    "whiten_init": True,                        # stem = whitening of 2x2 training patches
    "whiten_bias_epochs": 3,                    # the stem's bias trains for the first 3 epochs only
    "channels_last": True,                      # 1.3x faster convolutions on this CPU (docs/benchmarks.md)
    "tta": "flip_translate",                    # evaluation: mirror + 1px shifts, reported apart
}

# airbench94_muon (Jordan): airbench94's 94.01% in 8 epochs instead of 9.9 (0.81x the FLOPs), with Muon
# on the conv filters (training/muon.py). Translated to this net and loss: its head divides the logits by
# the width (256) where ours divides by 9, with weights 256/9 times larger at init, so SGD there is SGD here
# at (9/256)**2 the rate; its loss is summed over the batch, ours is a mean, so rates are per image.
MUON_HEAD_LR_PER_IMAGE = 0.67 * (9 / 256) ** 2  # 8.28e-4: the head's peak rate per image in the batch
AIRBENCH_MUON: dict[str, Any] = {
    **AIRBENCH,
    "batch_size": 2000,                         # images per step (airbench94_muon's), GPU and CPU alike
    "cpu_batch_size": 2000,
    "cpu_micro_batch_size": 250,                # on a CPU, forward/backward in parts of 250: activations stay
                                                # in cache, 1.2-1.4x the images/s of whole 2000-image passes
    "epochs": 8,
    "optimizer": "muon",
    "muon_lr": 0.24,                            # filters: peak step of the orthogonalised update
    "muon_momentum": 0.6,
    "momentum": 0.85,                           # head, biases, BN shifts: Nesterov SGD
    "lr_per_image": MUON_HEAD_LR_PER_IMAGE,
    "bias_lr_scale": 0.053 / MUON_HEAD_LR_PER_IMAGE,  # 64.0: the biases' 0.053 per image
    "weight_decay": 2e-6 / MUON_HEAD_LR_PER_IMAGE,    # coupled: a shrink of 2e-6 x batch per step at the peak
    "schedule": "linear",                       # 1 -> 0, no warm-up
    "lookahead_every": 0,                       # no lookahead
}
RECIPE_OPTIMIZERS = {"sgd": AIRBENCH, "muon": AIRBENCH_MUON}  # the airbench recipe, by its optimizer

AIRBENCH_MODELS = ("airbench_xs", "airbench_s", "airbench", "airbench_l")  # smallest first


def airbench_settings(batch_size: int | None = None, *, device: str = "cuda", optimizer: str = "sgd"
                      ) -> dict[str, Any]:
    """The airbench recipe as plan values (learning rate resolved for the batch size).

    ``optimizer``: sgd, airbench94's recipe; muon, airbench94_muon's.

    Raises:
        KeyError: ``optimizer`` has no airbench recipe.
    """
    recipe = RECIPE_OPTIMIZERS[optimizer]
    settings = {k: v for k, v in recipe.items()
                if k not in ("lr_per_image", "tta", "cpu_batch_size", "cpu_micro_batch_size")}
    settings["batch_size"] = batch_size or recipe["cpu_batch_size" if device == "cpu" else "batch_size"]
    micro = recipe.get("cpu_micro_batch_size") if device == "cpu" else None
    if micro and micro < settings["batch_size"]:
        settings["micro_batch_size"] = micro
    settings["learning_rate"] = recipe["lr_per_image"] * settings["batch_size"]
    return settings


def recipe_optimizer(config_optimizer: str, given: bool) -> str:
    """Which airbench variant a config asks for: muon when it names muon, else airbench94's sgd.

    Another optimizer named in the config (adam, adamw) keeps airbench94's settings, as before.
    """
    return config_optimizer if given and config_optimizer in RECIPE_OPTIMIZERS else "sgd"


def recipe_for(model: str) -> RecipeName:
    """The recipe a registered model trains with."""
    return "airbench" if model in AIRBENCH_MODELS else "plain"


# Recipes whose author tuned them at length, and the settings that tuning fixed. Stage 3 marks a
# plan's recipe by naming it (``plan.recipe``); stage 6 then searches only what the recipe left open
# (epochs, width, augmentation, class weighting: things that depend on the budget and the data), unless
# ``refinement.search_tuned_recipe`` is true. airbench94's optimiser settings come from many hundreds of
# CIFAR-10 runs by its author; a 10-trial search on a quarter of the data cannot out-rank them.
TUNED_SETTINGS: dict[str, frozenset[str]] = {
    "airbench": frozenset({"learning_rate", "weight_decay", "momentum", "label_smoothing", "optimizer",
                           "batch_size", "schedule", "warmup_fraction", "lookahead_every", "lookahead_alpha",
                           "muon_lr", "muon_momentum"}),
}


def tuned_settings(recipe: str) -> frozenset[str]:
    """The settings ``recipe``'s author tuned at length (empty: not a tuned recipe)."""
    return TUNED_SETTINGS.get(recipe, frozenset())
