"""Training settings (:class:`TrainSpec`): what stage 3 plans and a checkpoint records."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainSpec:
    """Training settings, as stage 3 plans them. Units in the comments."""

    epochs: int = 8                 # passes over the training split
    batch_size: int = 64            # images per step
    micro_batch_size: int | None = None  # images per forward/backward pass, gradients summed over a step's
                                         # parts (None: the whole batch at once)
    optimizer: str = "sgd"          # sgd (Nesterov), muon (conv filters; SGD for the rest), adam, adamw
    learning_rate: float = 0.05     # peak learning rate
    momentum: float = 0.9
    muon_lr: float = 0.24           # muon: conv filters' peak step (per step, not per image: the update is
                                    # orthogonalised, its size independent of the batch and the gradient)
    muon_momentum: float = 0.6      # muon: conv filters' Nesterov momentum
    weight_decay: float = 5e-4      # L2 on conv/linear weights, not on BN or biases
    label_smoothing: float = 0.0    # fraction of target mass spread over all classes
    schedule: str = "onecycle"      # onecycle, triangular, linear, cosine, constant (optim.schedule_factor)
    warmup_fraction: float = 0.2    # triangular: share of steps spent rising to the peak
    final_lr_fraction: float = 0.0  # triangular: learning rate at the last step, as a share of the peak
    bias_lr_scale: float = 1.0      # biases and BN shifts learn this many times faster (decay / same)
    augmentation: str = "none"      # none, flip, translate, flip_translate
    translate_pad: int = 1          # pixels of random translation
    alternating_flip: bool = False  # flip each image in every other epoch instead of at random
    lookahead_every: int = 0        # steps between lookahead blends; 0 = off
    lookahead_alpha: float = 0.95   # per-step blend weight at the end of training
    whiten_init: bool = False       # initialise an airbench stem from training-patch statistics
    whiten_bias_epochs: int = 0     # epochs the whitening bias trains before it freezes
    channels_last: bool = False     # NHWC memory layout: faster convolutions on CPUs and tensor cores
    compile: bool = False           # torch.compile the model (pays only for long runs)
    class_weights: tuple[float, ...] | None = None  # loss weight per class, None: equal
    precision: str = "fp32"         # fp32, bf16, fp16 (autocast)
    seed: int = 0
    max_seconds: float | None = None  # end after the epoch that crosses this training time, the schedule
                                      # re-timed to end there (training/horizon.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
