# Sourced by the device_*.sh scripts: pydantic from the carried wheels, mlestar from src/, $OUT ready.
# Prepared once on the development machine (both folders git-ignored via .git/info/exclude):
#   printf '/.whl/\n/.gpudata/\n' >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic_core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5
#   mkdir -p .gpudata && cp ../shared/datasets/cifar10-jpeg.tar.gz .gpudata/
OUT=${OUT:-/tmp/mlestar-device-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 MLESTAR_CACHE_DIR=/tmp/mlestar-cache
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
