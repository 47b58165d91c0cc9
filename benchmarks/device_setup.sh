# Sourced by the device_*.sh scripts: pydantic from the carried wheels, mlestar from src/, $OUT ready.
OUT=${OUT:-/tmp/mlestar-device-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MLESTAR_CACHE_DIR=/tmp/mlestar-cache
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
