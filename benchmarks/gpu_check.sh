#!/usr/bin/env bash
# One prepared run for a lent GPU machine (device tool): the accelerator tests (tests/train
# trains and evaluates on --device auto, i.e. the GPU under bf16 autocast), and the
# benchmarks that take --device, in a few minutes. Figures land in $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
make setup >/dev/null 2>&1 || { echo "setup failed"; exit 1; }
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
.venv/bin/python -m pytest -q tests/embedding tests/test_device.py tests/models tests/train 2>&1 | tee "$out/tests.log" | tail -3
.venv/bin/python benchmarks/embedding_bench.py --json "$out/embedding.json" 2>&1 | tail -20
