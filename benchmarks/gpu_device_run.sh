#!/usr/bin/env bash
# Run the GPU device check (benchmarks/gpu_check.py) on a lent device machine in one call.
#
# The device image (nvidia-h200, see /work/.library/device/KINDS.md) has python 3.12, cupy
# (cupy-cuda13x), numba, numba-cuda, numpy, scipy, networkx, sympy, pytest and hypothesis,
# but not dask: dask and its two missing pure-Python needs travel as wheels.
#
# 1. Here, once, in the repository root (where pip can reach the package index):
#        bash benchmarks/gpu_device_run.sh prepare
#    downloads the wheels into .whl/ (ignored by git: .gitignore; `carry` takes it along).
# 2. With the `device` tool: run(command="bash benchmarks/gpu_device_run.sh run",
#    carry=[".whl"], timeout_s=420). The check finishes in under 5 minutes; its figures
#    come back in $OUT/gpu_check.json and $OUT/gpu_check.log.
#    Then give_back, unless a rerun follows at once.
set -euo pipefail

WHEELS=(dask==2026.8.0 partd==1.4.2 locket==1.0.0)

case "${1:-}" in
prepare)
    mkdir -p .whl
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 --platform any \
        -d .whl "${WHEELS[@]}"
    ls -l .whl
    ;;
run)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    unset NUMBA_ENABLE_CUDASIM
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 -c "import cupy, numba.cuda; print('cupy', cupy.__version__, 'devices', cupy.cuda.runtime.getDeviceCount())"
    out="${OUT:-/tmp}"
    set -o pipefail
    python3 benchmarks/gpu_check.py --json "$out/gpu_check.json" "${@:2}" 2>&1 | tee "$out/gpu_check.log"
    ;;
*)
    echo "usage: $0 prepare | run [gpu_check.py options]" >&2
    exit 2
    ;;
esac
