"""CIFAR-10 (the JPEG copy) with mlestar's training engine: accuracy, training time, and speed vs a DataLoader.

Usage:
  .venv/bin/python benchmarks/cifar10.py --model airbench_s --epochs 8 --seeds 0 1 2
  .venv/bin/python benchmarks/cifar10.py --engine-vs-dataloader
  python3 benchmarks/cifar10.py --device cuda --sweep airbench_xs:5,10 airbench_s:3,6 --batch 256
  python3 benchmarks/cifar10.py --device cuda --model airbench --epochs 10 --train-on train+val \
      --precision bf16 --warmup 1 --seeds 0 1 2 --json results.json
Options: --precision fp32 bf16 fp16, --train-on train|train+val, --batch N (default:
the recipe's, 1024 on a GPU, 256 on a CPU), --compile, --archive PATH.

Prints, per run: training seconds (the fit loop only: no data loading, no
evaluation, no warm-up), test accuracy plain and with flip+translate TTA; then
mean and spread over seeds. ``--warmup N`` first trains one untimed N-epoch run,
so cuDNN's kernel choice (and torch.compile) is not billed to the timed runs, as
airbench does. Selection never looks at test: the recipe and epochs are fixed by
the command; with ``--train-on train+val`` the final epoch's weights are kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mlestar.config.schema import DataConfig
from mlestar.data.dataset import ImageSplit
from mlestar.data.sources import load_dataset
from mlestar.training.loop import fit, split_to_tensors
from mlestar.training.plan import TrainingPlan, build_model, spec_from_plan
from mlestar.training.recipes import airbench_settings
from mlestar.training.precision import choose_device
from mlestar.training.tta import tta_logits

ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def plan_for(model: str, epochs: int, batch: int | None, precision: str, seed: int, device: str = "cpu",
             compile: bool = False, optimizer: str = "sgd") -> TrainingPlan:
    """The airbench recipe (``optimizer``: sgd or muon) for ``model`` on CIFAR-10-shaped data, as stage 3 plans it."""
    settings = airbench_settings(batch, device=device, optimizer=optimizer)
    return TrainingPlan(**{**settings, "epochs": epochs}, model=model,
                        recipe="airbench", width=_width(model), precision=precision, seed=seed, num_classes=10,
                        in_channels=3, image_size=32, compile=compile, flip_safe=True, class_weighting="none",
                        device=device)


def _width(model: str) -> int:
    from mlestar.models import model_info

    return model_info(model).default_width


def training_tensors(dataset, prep, train_on: str, device: torch.device, limit: int | None = None):
    """(train, val) tensors on ``device``; train+val joins the two, as the reference's 50,000 images.

    ``limit`` keeps a seeded random N of the training images (the split is sorted by class): for
    comparisons that cannot afford the whole set, such as bf16 on a CPU without AMX.
    """
    train = dataset.train
    if train_on == "train+val":
        train = ImageSplit(np.concatenate([train.images, dataset.val.images]),
                           np.concatenate([train.labels, dataset.val.labels]))
    if limit:
        train = train.subset(np.sort(np.random.default_rng(0).permutation(len(train))[:limit]))
    return split_to_tensors(train, prep, device), split_to_tensors(dataset.val, prep, device)


def one_run(data, x_test, y_test, args, precision: str, seed: int, epochs: int | None = None) -> dict:
    (train, val), device = data, x_test.device
    plan = plan_for(args.model, epochs or args.epochs, args.batch, precision, seed, device.type, args.compile,
                    args.optimizer)
    keep = "last" if args.train_on == "train+val" else "best"
    result = fit(build_model(plan).to(device), train, val, spec_from_plan(plan), tensorboard=False, keep=keep)
    plain, tta = accuracies(result.model, x_test, y_test)
    val = result.history[-1]["val_accuracy"] if args.train_on == "train" else None
    return {"seed": seed, "precision": precision, "seconds": result.training_time, "epochs": plan.epochs,
            "plain": plain, "tta": tta, "val": val}


def accuracies(model, x, y) -> tuple[float, float]:
    """(plain, flip+translate TTA) accuracy of ``model`` on ``x``; the TTA reuses the plain pass."""
    plain = tta_logits(model, x, "none", channels_last=True)
    tta = tta_logits(model, x, "flip_translate", channels_last=True, plain_logits=plain)
    y = y.cpu()
    return float((plain.argmax(1) == y).float().mean()), float((tta.argmax(1) == y).float().mean())


def accuracy_runs(args) -> None:
    device = choose_device(args.device)
    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    data = training_tensors(dataset, prep, args.train_on, device, args.limit_train)
    x_test, y_test = split_to_tensors(dataset.test, prep, device)
    batch = args.batch or airbench_settings(None, device=device.type, optimizer=args.optimizer)["batch_size"]
    print(f"device {describe(device)}; train on {args.train_on}: {len(data[0][0])} images; test {len(x_test)}; "
          f"model {args.model}, {args.optimizer}, {args.epochs} epochs, batch {batch}, compile {args.compile}, "
          f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    results = []
    for precision in args.precision:
        if args.warmup:
            warm = one_run(data, x_test, y_test, args, precision, 99, epochs=args.warmup)
            print(f"  {precision} warm-up ({args.warmup} epoch, untimed): {warm['seconds']:.1f}s")
        rows = []
        for seed in args.seeds:  # printed as each finishes: a CPU seed takes minutes
            rows.append(row := one_run(data, x_test, y_test, args, precision, seed))
            print(f"  {precision} seed {row['seed']}: {row['seconds']:.2f}s training, test {row['plain']:.4f} plain, "
                  f"{row['tta']:.4f} with flip+translate TTA (last-epoch val {row['val']})", flush=True)
        results.extend(rows)
        if len(rows) > 1:
            tta = [r["tta"] for r in rows]
            secs = [r["seconds"] for r in rows]
            print(f"  {precision} over {len(rows)} seeds: TTA accuracy {statistics.mean(tta):.4f} "
                  f"± {statistics.stdev(tta):.4f} (min {min(tta):.4f}, max {max(tta):.4f}); "
                  f"training {statistics.mean(secs):.2f}s ± {statistics.stdev(secs):.2f}s")
    if args.json:
        args.json.write_text(json.dumps({"device": describe(device), "args": {k: str(v) for k, v in vars(args).items()},
                                         "runs": results}, indent=2))


def sweep(args) -> None:
    """Validation accuracy (train split only; test never read) of model x epochs pairs: the planner's evidence.

    Accuracy after a given number of epochs does not depend on the hardware, so a GPU
    answers in minutes which model/epochs pair a CPU budget should buy.
    """
    device = choose_device(args.device)
    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    train, (x_val, y_val) = training_tensors(dataset, prep, "train", device)
    batch = args.batch or 256
    print(f"device {describe(device)}; sweep on train {len(train[0])} / val {len(x_val)} (test not read); "
          f"batch {batch}, {args.precision[0]}")
    rows = []
    for item in args.sweep:
        model, epochs = item.split(":")
        for n in (int(e) for e in epochs.split(",")):
            for seed in args.seeds:
                plan = plan_for(model, n, batch, args.precision[0], seed, device.type)
                result = fit(build_model(plan).to(device), train, (x_val, y_val), spec_from_plan(plan),
                             tensorboard=False, keep="last")
                plain, tta = accuracies(result.model, x_val, y_val)
                row = {"model": model, "epochs": n, "seed": seed, "seconds": result.training_time,
                       "val_plain": plain, "val_tta": tta}
                rows.append(row)
                print(f"  {model:12s} {n:3d} epochs seed {seed}: val {row['val_plain']:.4f} plain, "
                      f"{row['val_tta']:.4f} TTA ({row['seconds']:.1f}s)")
    if args.json:
        args.json.write_text(json.dumps({"device": describe(device), "sweep": rows}, indent=2))


def describe(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def engine_vs_dataloader(args) -> None:
    """Images/s of one epoch over 10,240 images: the tensor engine vs a per-sample DataLoader pipeline."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    n = 10_240
    sub = dataset.train.subset(np.arange(n))
    plan = plan_for(args.model, 1, args.batch or 256, "fp32", 0)
    cpu = torch.device("cpu")
    tensors = split_to_tensors(sub, prep, cpu)
    engine = fit(build_model(plan), tensors, (tensors[0][:256], tensors[1][:256]), spec_from_plan(plan),
                 tensorboard=False).training_time

    class Images(Dataset):
        tf = transforms.Compose([transforms.ToPILImage(), transforms.RandomCrop(32, padding=2, padding_mode="reflect"),
                                 transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                 transforms.Normalize(prep.mean, prep.std)])

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            return self.tf(sub.images[i]), int(sub.labels[i])

    model = build_model(plan).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.85, nesterov=True)
    loader = DataLoader(Images(), batch_size=args.batch or 256, shuffle=True, num_workers=1)
    start = time.perf_counter()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    baseline = time.perf_counter() - start
    print(f"{args.model}, batch {args.batch or 256}, {n} images, 1 epoch: engine {n / engine:.0f} img/s, "
          f"DataLoader (1 worker, torchvision transforms) {n / baseline:.0f} img/s; ratio {baseline / engine:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--model", default="airbench_s")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "muon"],
                        help="the airbench recipe's variant: airbench94's (sgd) or airbench94_muon's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--warmup", type=int, default=0, help="epochs of one untimed run first")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--limit-train", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sweep", nargs="+", metavar="MODEL:E1,E2",
                        help="validation accuracy of each model at each epoch count (train split, test unread)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--train-on", choices=["train", "train+val"], default="train")
    parser.add_argument("--engine-vs-dataloader", action="store_true")
    args = parser.parse_args()
    if args.engine_vs_dataloader:
        engine_vs_dataloader(args)
    elif args.sweep:
        sweep(args)
    else:
        accuracy_runs(args)


if __name__ == "__main__":
    main()
