"""CIFAR-10 (the JPEG copy) with mlestar's training engine: accuracy, training time, and speed vs a DataLoader.

Usage:
  .venv/bin/python benchmarks/cifar10.py --model airbench_s --epochs 8 --seeds 0 1 2
  .venv/bin/python benchmarks/cifar10.py --engine-vs-dataloader
Options: --precision fp32 bf16, --train-on train|train+val, --batch N, --archive PATH.

Prints, per run: training seconds (the fit loop only, no evaluation), test
accuracy plain and with flip+translate TTA; then mean and spread over seeds.
Selection never looks at test: the recipe and epochs are fixed by the command.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mlestar.config.schema import DataConfig
from mlestar.data.dataset import ImageSplit
from mlestar.data.sources import load_dataset
from mlestar.training.loop import fit, split_to_tensors
from mlestar.training.plan import build_model, spec_from_plan
from mlestar.training.recipes import airbench_settings
from mlestar.training.tta import tta_probabilities

ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def plan_for(model: str, epochs: int, batch: int, precision: str, seed: int) -> dict:
    return {**airbench_settings(batch, device="cpu"), "model": model, "width": _width(model),
            "epochs": epochs, "precision": precision, "seed": seed, "num_classes": 10, "in_channels": 3,
            "image_size": 32}


def _width(model: str) -> int:
    from mlestar.models import model_info

    return model_info(model).default_width


def one_run(dataset, prep, args, precision: str, seed: int) -> dict:
    cpu = torch.device("cpu")
    train = dataset.train
    if args.train_on == "train+val":
        train = ImageSplit(np.concatenate([train.images, dataset.val.images]),
                           np.concatenate([train.labels, dataset.val.labels]))
    plan = plan_for(args.model, args.epochs, args.batch, precision, seed)
    val = split_to_tensors(dataset.val, prep, cpu)
    result = fit(build_model(plan), split_to_tensors(train, prep, cpu), val, spec_from_plan(plan), tensorboard=False)
    x_test, y_test = split_to_tensors(dataset.test, prep, cpu)
    model = result.model
    plain = tta_probabilities(model, x_test, "none").argmax(1)
    tta = tta_probabilities(model, x_test, "flip_translate").argmax(1)
    y = y_test.numpy()
    return {"seconds": result.training_time, "plain": float((plain == y).mean()), "tta": float((tta == y).mean()),
            "val": result.history[-1]["val_accuracy"]}


def accuracy_runs(args) -> None:
    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    print(f"train on {args.train_on}: {len(dataset.train) + (len(dataset.val) if args.train_on != 'train' else 0)}"
          f" images; test {len(dataset.test)}; model {args.model}, {args.epochs} epochs, batch {args.batch}, "
          f"threads {torch.get_num_threads()}")
    for precision in args.precision:
        rows = []
        for seed in args.seeds:
            row = one_run(dataset, prep, args, precision, seed)
            rows.append(row)
            print(f"  {precision} seed {seed}: {row['seconds']:.1f}s training, test {row['plain']:.4f} plain, "
                  f"{row['tta']:.4f} with flip+translate TTA (last-epoch val {row['val']:.4f})")
        if len(rows) > 1:
            tta = [r["tta"] for r in rows]
            secs = [r["seconds"] for r in rows]
            print(f"  {precision} over {len(rows)} seeds: TTA accuracy {statistics.mean(tta):.4f} "
                  f"± {statistics.stdev(tta):.4f}; training {statistics.mean(secs):.1f}s ± {statistics.stdev(secs):.1f}s")


def engine_vs_dataloader(args) -> None:
    """Images/s of one epoch over 10,240 images: the tensor engine vs a per-sample DataLoader pipeline."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    n = 10_240
    sub = dataset.train.subset(np.arange(n))
    plan = plan_for(args.model, 1, args.batch, "fp32", 0)
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
    loader = DataLoader(Images(), batch_size=args.batch, shuffle=True, num_workers=1)
    start = time.perf_counter()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    baseline = time.perf_counter() - start
    print(f"{args.model}, batch {args.batch}, {n} images, 1 epoch: engine {n / engine:.0f} img/s, "
          f"DataLoader (1 worker, torchvision transforms) {n / baseline:.0f} img/s; ratio {baseline / engine:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--model", default="airbench_s")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--train-on", choices=["train", "train+val"], default="train")
    parser.add_argument("--engine-vs-dataloader", action="store_true")
    args = parser.parse_args()
    if args.engine_vs_dataloader:
        engine_vs_dataloader(args)
    else:
        accuracy_runs(args)


if __name__ == "__main__":
    main()
