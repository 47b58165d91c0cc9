#!/usr/bin/env bash
# CIFAR-10 (JPEG copy) on a lent GPU: the one prepared run of issue 4's GPU target
# (at least 90.4% test accuracy with flip+translate TTA in at most 10 s of training).
#
# Runs on the device machine from the repository root, where python3 has torch but not
# pydantic: the wheels travel in .whl/ and the archive in .gpudata/ (both git-ignored via
# .git/info/exclude and named in the call's `carry`). Writes logs and JSON to $OUT.
# Numbers and the command go to docs/benchmarks.md.
set -uo pipefail
source benchmarks/device_setup.sh
bench() {  # name, then benchmarks/cifar10.py arguments
  local name=$1; shift
  timeout "${LIMIT:-150}" python3 benchmarks/cifar10.py --device cuda --archive .gpudata/cifar10-jpeg.tar.gz \
    --train-on train+val --warmup 1 --json "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.log"
}
# 1. the headline: airbench width, 10 epochs, bf16 autocast, eager, 5 seeds
bench airbench_bf16 --model airbench --epochs 10 --precision bf16 --seeds 0 1 2 3 4
# 2. fp16 autocast with loss scaling, 3 seeds
bench airbench_fp16 --model airbench --epochs 10 --precision fp16 --seeds 0 1 2
# 3. torch.compile (its compilation falls in the untimed warm-up run)
LIMIT=240 bench airbench_bf16_compile --model airbench --epochs 10 --precision bf16 --compile --seeds 0 1 2
# 4. the wider net, for accuracy beyond the target
bench airbench_l_bf16 --model airbench_l --epochs 10 --precision bf16 --seeds 0 1 2
