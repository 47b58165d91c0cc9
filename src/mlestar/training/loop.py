"""The fit loop: whole dataset as tensors on the device, checkpoints every epoch, exact resume.

A checkpoint holds model, optimizer, scheduler, history, the best weights so
far and every RNG state (shuffling generator, torch global RNG for dropout),
so a run killed after epoch k and resumed ends with the same weights as one
that never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlestar.data.dataset import ImageSplit, Preprocessing
from mlestar.data.preprocess import normalize_pixels, to_unit
from mlestar.errors import TrainingError
from mlestar.training.augment import augment
from mlestar.training.checkpoint import load_torch, save_torch
from mlestar.training.horizon import Horizon, epochs_within
from mlestar.training.optim import Lookahead, make_optimizer, make_scheduler
from mlestar.training.precision import autocast_dtype
from mlestar.training.spec import TrainSpec

EpochCallback = Callable[[int, dict[str, float]], None]
CHECKPOINT = "checkpoints/last.pt"


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the model holds the best-validation weights."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    training_time: float
    resumed_from: int = 0
    stopped_early: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    world: int = 1  # processes it trained on (DDP ranks)


def split_to_tensors(split: ImageSplit, prep: Preprocessing, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC -> normalized float NCHW on ``device`` (done once per run).

    Through :func:`mlestar.data.preprocess.normalize_pixels`, the function the
    served model's inputs go through too: one definition of the model's input.
    """
    x = torch.from_numpy(normalize_pixels(to_unit(split.images), prep)).to(device)
    return x.contiguous(), torch.from_numpy(split.labels).to(device)


@torch.no_grad()
def evaluate_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024, precision: str = "fp32",
                    channels_last: bool = False, on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Logits for every row of ``x`` in eval mode, fp32 on the CPU.

    ``on_batch(rows)`` is called after each batch with the rows it held (for a progress bar).
    """
    model.eval()
    dtype = autocast_dtype(precision)
    outs = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        xb = xb.contiguous(memory_format=torch.channels_last) if channels_last else xb
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            outs.append(model(xb).float().cpu())
        if on_batch is not None:
            on_batch(len(xb))
    return torch.cat(outs)


def prepare_model(model: nn.Module, train_x: torch.Tensor, spec: TrainSpec) -> nn.Module:
    """Whitening init from training patches, memory layout; before the optimizer sees the model."""
    if spec.whiten_init and hasattr(model, "init_whitening"):
        model.init_whitening(train_x[:5000])  # 5,000 images estimate a 12x12 covariance well
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if train_x.is_cuda and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels once
    return model


class Trainer:
    """State of one fit: built fresh or restored from a checkpoint."""

    def __init__(self, model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], spec: TrainSpec,
                 shard: Shard | None = None) -> None:
        self.model, self.spec = model, spec
        self.shard = shard or Shard()
        # torch.compile shares the parameters; state is always read from the plain module.
        self.forward = self.shard.wrap(torch.compile(model) if spec.compile else model)
        self.x, self.y = train
        self.steps_per_epoch = math.ceil(len(self.x) / spec.batch_size)
        self.total_steps = spec.epochs * self.steps_per_epoch
        self.horizon = Horizon(self.total_steps)  # the identity unless the time budget re-times the schedule
        self.opt = make_optimizer(model, spec)
        # fp16 has a narrow exponent: scale the loss so small gradients do not flush to zero (GPU only;
        # on CPUs fp16 is mapped to bf16, which needs no scaling).
        self.scaler = torch.amp.GradScaler("cuda", enabled=spec.precision == "fp16" and self.x.is_cuda)
        self.sched = make_scheduler(self.opt, spec, self.steps_per_epoch, clock=self.horizon.nominal)
        self.generator = torch.Generator().manual_seed(spec.seed)
        # Alternating flip: each image gets a random base choice once; epoch parity inverts it.
        self.flip_base = (torch.rand(len(self.x), generator=self.generator) < 0.5).to(self.x.device)
        weights = torch.tensor(spec.class_weights, device=self.x.device) if spec.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=spec.label_smoothing)
        self.lookahead = Lookahead(model, spec.lookahead_every, spec.lookahead_alpha, self.total_steps) \
            if spec.lookahead_every else None
        self.step_count = 0
        self.history: list[dict[str, float]] = []
        self.best_acc, self.best_epoch, self.best_state = -1.0, 0, copy.deepcopy(model.state_dict())
        self.train_time = 0.0

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                "flip_base": self.flip_base, "step": self.step_count,
                "lookahead": self.lookahead.state_dict() if self.lookahead else None,
                "horizon": self.horizon.state_dict(),
                "scaler": self.scaler.state_dict(),
                "history": self.history, "best_acc": self.best_acc, "best_epoch": self.best_epoch,
                "best_state": self.best_state, "train_time": self.train_time, "spec": self.spec.to_dict()}

    def restore(self, ckpt: dict[str, Any]) -> None:
        if ckpt["spec"] != self.spec.to_dict():
            raise TrainingError("checkpoint was written with different training settings",
                                hint="start the stage afresh: mlestar run --from implementation")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["opt"])
        self.sched.load_state_dict(ckpt["sched"])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.flip_base, self.step_count = ckpt["flip_base"].to(self.x.device), ckpt["step"]
        if self.lookahead is not None:
            self.lookahead.load_state_dict(ckpt["lookahead"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("horizon"):
            self.horizon.load_state_dict(ckpt["horizon"])
        self.history, self.best_acc, self.best_epoch = ckpt["history"], ckpt["best_acc"], ckpt["best_epoch"]
        self.best_state, self.train_time = ckpt["best_state"], ckpt["train_time"]

    @property
    def end_epoch(self) -> int:
        """The epoch the run ends after: the plan's last, or an earlier one the time budget re-timed it to."""
        return math.ceil(self.horizon.end / self.steps_per_epoch)

    def retime(self, max_seconds: float) -> str | None:
        """Move the schedule's end to the epoch that crosses ``max_seconds`` at the last epoch's pace.

        The pace is the last epoch's, which follows a drifting host; the first
        epoch, slowed by kernel set-up, re-times only a run already over budget.
        All ranks take the earliest end any of them foresees. Returns a line for
        the log when the end moved, else None.
        """
        done = len(self.history)
        last_s = self.history[-1]["time"] - (self.history[-2]["time"] if done > 1 else 0.0)
        foreseen = min(self.spec.epochs, done + epochs_within(max_seconds, self.train_time, last_s))
        warming = done < 2 and self.train_time < max_seconds
        end = self.shard.least(self.end_epoch if warming else foreseen)  # every rank joins the all-reduce
        if not self.horizon.retime(self.step_count, end * self.steps_per_epoch):
            return None
        if self.lookahead is not None and self.horizon.end == self.step_count:
            self.lookahead.finish(self.model)  # over budget now: this epoch was the last, hand over the average
        return (f"at {last_s:.1f}s per epoch the {max_seconds:.0f}s budget holds {end} of {self.spec.epochs} epochs: "
                f"the schedule now ends after epoch {end}")

    @property
    def spent_from(self) -> int:
        """The step from which :meth:`spent_params` are spent (the stem bias's epochs are over)."""
        return self.spec.whiten_bias_epochs * self.steps_per_epoch

    def spent_params(self) -> list[nn.Parameter]:
        """Parameters whose learning rate is zero for every step from here on: the stem's bias after its epochs.

        Empty under data parallelism: DDP expects the same parameters to take gradients every step.
        """
        group = next((g for g in self.opt.param_groups if g.get("name") == "whiten_bias"), None)
        spent = self.step_count >= self.spent_from
        return list(group["params"]) if group and spent and self.shard.world == 1 else []

    def freeze_spent_params(self) -> None:
        """Stop gradients into :meth:`spent_params`; the weights they would have updated stay the same.

        Their steps were already zero (learning rate 0), so the trained weights are unchanged; without
        a gradient into the stem, autograd also skips the first conv's input gradient, the widest
        layer's (about 1.1x per step for airbench nets on the CPU, docs/benchmarks.md).
        :func:`fit` gives them back their ``requires_grad`` when it returns.
        """
        for param in self.spent_params():
            param.requires_grad_(False)

    def thaw(self) -> None:
        """Every optimizer parameter takes gradients again (undoes :meth:`freeze_spent_params`)."""
        for group in self.opt.param_groups:
            for param in group["params"]:
                param.requires_grad_(True)

    def batch(self, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """The augmented images at ``idx`` for this epoch, in the configured memory layout."""
        spec = self.spec
        xb = self.x[idx]
        if spec.alternating_flip and "flip" in spec.augmentation:
            flip = self.flip_base[idx] ^ bool(epoch % 2)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            kind = "translate" if "translate" in spec.augmentation else "none"
        else:
            kind = spec.augmentation
        xb = augment(xb, kind, self.generator, spec.translate_pad)
        return xb.contiguous(memory_format=torch.channels_last) if spec.channels_last else xb

    def accumulating(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """Context for one micro-batch's forward and backward: DDP's ``no_sync`` unless it is the step's last.

        Gradients of the earlier parts then accumulate locally, and the last part's
        backward all-reduces the sum once per optimizer step instead of once per part.
        """
        no_sync = getattr(self.forward, "no_sync", None)
        return contextlib.nullcontext() if last or no_sync is None else no_sync()

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass; returns (mean loss, accuracy) on the augmented training batches.

        Loss and accuracy accumulate on the device and are read once per epoch:
        a per-step ``.item()`` would make the host wait for the GPU every step.
        A non-finite loss is therefore reported at the end of its epoch.
        """
        self.model.train()
        self.freeze_spent_params()
        dtype = autocast_dtype(self.spec.precision)
        perm = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        total_loss = torch.zeros((), device=self.x.device)
        correct = torch.zeros((), dtype=torch.long, device=self.x.device)
        seen = 0
        for step in range(self.steps_per_epoch):
            idx = perm[step * self.spec.batch_size:(step + 1) * self.spec.batch_size]
            idx = idx[self.shard.rank::self.shard.world]  # data parallel: each rank its share of the batch
            xb, yb = self.batch(idx, epoch), self.y[idx]
            self.opt.zero_grad(set_to_none=True)
            parts = micro_batches(len(idx), self.spec.micro_batch_size)
            for i, part in enumerate(parts):
                part_y = yb[part]
                with self.accumulating(last=i == len(parts) - 1):
                    with torch.autocast(self.x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        logits = self.forward(xb[part])
                        loss = self.loss_fn(logits.float(), part_y)
                    # Each part's mean loss weighted by its share: the gradients sum to the whole batch's mean.
                    self.scaler.scale(loss * (len(part_y) / len(idx))).backward()
                total_loss += loss.detach() * len(part_y)
                correct += (logits.detach().argmax(1) == part_y).sum()
            self.scaler.step(self.opt)
            self.scaler.update()
            self.sched.step()
            self.step_count += 1
            if self.lookahead is not None:
                self.lookahead.step(self.model, self.step_count, self.horizon.nominal(self.step_count))
            seen += len(idx)
        mean_loss = float(total_loss) / seen
        if not math.isfinite(mean_loss):
            raise TrainingError(f"loss became {mean_loss} in epoch {epoch}",
                                hint="lower training.learning_rate or use precision: fp32")
        if self.lookahead is not None and self.step_count == self.horizon.end:
            self.lookahead.finish(self.model)
        return mean_loss, int(correct) / seen


def micro_batches(n: int, micro: int | None) -> list[slice]:
    """Slices of a batch of ``n`` that run forward and backward one at a time (``micro``: None, all at once).

    As many parts as ``micro`` needs, their sizes within one of each other.

    Gradient accumulation: one optimizer step over the whole batch, with each
    forward pass on a part. On a CPU the activations of a smaller part stay in
    cache (a 2,000-image batch in parts of 250 trains faster per image,
    docs/benchmarks.md); batch norm then normalises over each part.
    """
    parts = math.ceil(n / micro) if micro else 1
    edges = [round(i * n / parts) for i in range(parts + 1)]  # even parts: no 12-image tail for batch norm
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


@dataclass(frozen=True)
class Shard:
    """This process's place in data-parallel training (rank 0 of 1 without it).

    ``wrap`` turns the model into what runs forward (DDP); ``least`` gives
    every rank the smallest of their numbers (an all-reduce), so all take the
    same last epoch; only ``rank`` 0 writes.
    """

    rank: int = 0
    world: int = 1
    wrap: Callable[[nn.Module], nn.Module] = lambda model: model
    least: Callable[[int], int] = lambda n: n


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
        spec: TrainSpec, *, out_dir: Path | None = None, resume: bool = False,
        on_epoch: EpochCallback | None = None, report: Callable[[str], None] = lambda s: None,
        progress: Callable[[int, int], None] = lambda done, total: None, tensorboard: bool = True,
        shard: Shard | None = None, keep: str = "best") -> FitResult:
    """Train ``model`` and return it with its best-validation weights loaded.

    ``keep="last"`` returns the final weights instead: for a model trained on
    training plus validation data, where validation cannot select an epoch.

    With ``out_dir``, writes ``checkpoints/last.pt`` after every epoch and
    TensorBoard logs to ``tensorboard/``; with ``resume``, continues from that
    checkpoint. ``on_epoch(epoch, row)`` may raise to stop (Optuna pruning).
    With ``shard`` (see :mod:`mlestar.training.distributed`) each rank trains on
    its share of every batch and only rank 0 writes.
    """
    torch.manual_seed(spec.seed)
    shard = shard or Shard()
    writes = shard.rank == 0
    model = prepare_model(model, train[0], spec)
    trainer = Trainer(model, train, spec, shard)
    ckpt_path = out_dir / CHECKPOINT if out_dir else None
    resumed_from = 0
    if resume and ckpt_path is not None and ckpt_path.exists():
        trainer.restore(load_torch(ckpt_path))
        resumed_from = len(trainer.history)
        report(f"resumed training from the checkpoint after epoch {resumed_from}")
    writer = _tensorboard(out_dir) if tensorboard and out_dir and writes else None
    stopped = None
    try:
        epoch = resumed_from + 1
        while epoch <= trainer.end_epoch:
            row = _run_epoch(trainer, val, epoch)
            _log_epoch(writer, row, report, spec.epochs)
            progress(epoch, spec.epochs)
            moved = trainer.retime(spec.max_seconds) if spec.max_seconds is not None else None
            if moved:
                report(moved)
            if ckpt_path is not None and writes:
                save_torch(trainer.state(), ckpt_path)
            if on_epoch is not None:
                on_epoch(epoch, row)
            epoch += 1
        if trainer.end_epoch < spec.epochs:
            stopped = (f"time budget of {spec.max_seconds:.0f}s reached: the schedule was re-timed to end after "
                       f"epoch {trainer.end_epoch} of {spec.epochs}")
    finally:
        trainer.thaw()
        if writer is not None:
            writer.close()
    if keep == "last":
        return FitResult(model, trainer.history, len(trainer.history), trainer.train_time, resumed_from, stopped)
    model.load_state_dict(trainer.best_state)
    return FitResult(model, trainer.history, trainer.best_epoch, trainer.train_time, resumed_from, stopped)


def _run_epoch(trainer: Trainer, val: tuple[torch.Tensor, torch.Tensor], epoch: int) -> dict[str, float]:
    """Train one epoch, evaluate on validation, keep the best weights; returns the history row."""
    started = time.perf_counter()
    lr = trainer.opt.param_groups[0]["lr"]
    train_loss, train_acc = trainer.train_epoch(epoch)
    trainer.train_time += time.perf_counter() - started
    logits = evaluate_logits(trainer.model, val[0], precision=trainer.spec.precision,
                             channels_last=trainer.spec.channels_last)
    val_loss = float(F.cross_entropy(logits, val[1].cpu()))
    val_acc = float((logits.argmax(1) == val[1].cpu()).float().mean())
    if val_acc > trainer.best_acc:
        trainer.best_acc, trainer.best_epoch = val_acc, epoch
        trainer.best_state = copy.deepcopy(trainer.model.state_dict())
    row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
           "val_accuracy": val_acc, "lr": lr, "time": trainer.train_time}
    trainer.history.append(row)
    return row


def _tensorboard(out_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def _log_epoch(writer: Any, row: dict[str, float], report: Callable[[str], None], epochs: int) -> None:
    if writer is not None:
        for key in ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"):
            writer.add_scalar(key, row[key], int(row["epoch"]))
        writer.flush()
    report(f"  epoch {int(row['epoch'])}/{epochs}: loss {row['train_loss']:.4f} "
           f"train {row['train_accuracy']:.3f} val {row['val_accuracy']:.3f} ({row['time']:.1f}s)")


def predict_proba(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax probabilities as a NumPy array."""
    return torch.softmax(evaluate_logits(model, x), dim=1).numpy()
