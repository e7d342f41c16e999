#!/usr/bin/env bash
# The GPU checks of issue 17, as one script for a lent GPU machine (not yet run on a GPU; its
# two steps were run on the CPU machine with small sizes, the metrics with --device torch:cpu):
#   1. all metrics on (10,000, 4,096, 4,096) on CUDA, float64 and float32 products, against
#      the same calls on the CPU in the same process (benchmarks/metrics.py);
#   2. training (dense, one IMP round) and extraction of ResNet-20 and the seed study's VGG on
#      CIFAR-shaped data, against a bare PyTorch loop on the same GPU (benchmarks/throughput.py).
# Results go to $OUT (the device tool's output folder) or ./gpu-results.
#
#   bash benchmarks/gpu_session.sh
set -euo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out"
cd "$(dirname "$0")/.."
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} > "$out/machine.txt" 2>&1
python benchmarks/throughput.py --device cuda --images 20000 --probe 10000 --repeat 2 \
    2>&1 | grep -v " INFO " | tee "$out/throughput.md"
python benchmarks/metrics.py 10000,4096,4096 --only-all --float32 --device cuda \
    2>&1 | tee "$out/metrics_cuda.md"
