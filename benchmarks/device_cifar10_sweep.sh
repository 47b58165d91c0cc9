#!/usr/bin/env bash
# Which airbench width and epoch count should a CPU time budget buy? Validation accuracy (train split
# only, test never read) of each pair at the CPU batch size (256), measured on a lent GPU because
# accuracy after N epochs does not depend on the hardware; stage 3's rule is checked against it
# (docs/benchmarks.md). Carry .whl and .gpudata as for device_cifar10.sh.
set -uo pipefail
source benchmarks/device_setup.sh
timeout "${LIMIT:-300}" python3 benchmarks/cifar10.py --device cuda --archive .gpudata/cifar10-jpeg.tar.gz \
  --batch 256 --precision fp32 --seeds 0 --json "$OUT/sweep.json" \
  --sweep airbench_xs:5,7,10,14,20 airbench_s:2,3,5,7,8 airbench:2,3 2>&1 | tee "$OUT/sweep.log"
