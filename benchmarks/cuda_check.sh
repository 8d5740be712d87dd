#!/usr/bin/env bash
# The CUDA checks in one command, for a machine with a GPU: the CUDA test path, the probe and metric-kernel
# benchmarks on the GPU, an operator profile of one measurement per model, and probe / plain in interleaved blocks.
# Every log goes into one folder:
#
#     bash benchmarks/cuda_check.sh [OUT_DIR]        # default: cuda-check/
#
# About 2-5 minutes on one H200. Needs the project's test dependencies (pytest, pytest-benchmark) and a CUDA build of
# torch; run from anywhere.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-cuda-check}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
    nproc
} > "$out/device.txt" 2>&1

status=0
python -m pytest tests -k cuda -q -p no:cacheprovider > "$out/tests.txt" 2>&1 || status=1
python -m pytest benchmarks/test_probe_throughput.py benchmarks/test_metric_kernels.py -k cuda --benchmark-only \
    -p no:cacheprovider > "$out/benchmarks.txt" 2>&1 || status=1
python benchmarks/profile_probe.py --device cuda > "$out/profile.txt" 2>&1 || status=1
python benchmarks/paired_probe.py --device cuda --models ppo_actor_64x64_b2048 ppo_critic_64x64_b2048 \
    wide_mlp_4x1024_b8192 conv_2layer_b256_16x16 > "$out/paired.txt" 2>&1 || status=1
tail -n 3 "$out/tests.txt"
grep -A 40 "ratios to the baseline" "$out/benchmarks.txt" | head -n 60
grep "^== " "$out/profile.txt"
cat "$out/paired.txt"
exit "$status"
