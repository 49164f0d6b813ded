#!/usr/bin/env bash
# Scaling of the distributed trainer on 1, 2, 4 and 8 GPUs of one host (NCCL via torchrun):
# generation throughput per GPU count against 1 GPU, and bit-identity of the final parameters
# and optimizer state across every run and rank. One command:
#   scripts/scaling_multi_gpu.sh [OUT_DIR]                     (default reports/scaling)
# Environment: GPUS="1 2 4 8", POPULATION=2048 (raise it to the largest that fits: members are
# evaluated 256 per forward call, so memory grows with the update's noise, not the forward),
# GENERATIONS=5, WARMUP=2, PYTHON=python, BENCH_ARGS: extra benchmarks/bench_distributed.py
# arguments (its defaults are the large workload: --dim 4096 --layers 4 --tokens 64 --rank 16
# --dtype bfloat16 --members-per-call 256).
# Writes OUT_DIR/w<G>.json (benchmark), OUT_DIR/digests/w<G>/rank<r>.json (state digests),
# OUT_DIR/scaling.json (+ scaling.png) and prints a Markdown table; exits 1 if any final state
# differs. GPU counts above what the host has are skipped and listed as not run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-reports/scaling}
GPUS=${GPUS:-"1 2 4 8"}
POPULATION=${POPULATION:-2048}
GENERATIONS=${GENERATIONS:-5}
WARMUP=${WARMUP:-2}
BENCH_ARGS=${BENCH_ARGS:-}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
available=$("$PY" -c "import torch; print(torch.cuda.device_count())")
mkdir -p "$OUT"
rm -rf "$OUT"/w*.json "$OUT/digests"
for gpus in $GPUS; do
  if (( gpus > available )); then
    echo "skipping $gpus GPUs: this host has $available"
    continue
  fi
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of arguments
  "$PY" -m torch.distributed.run --standalone --nproc-per-node "$gpus" benchmarks/bench_distributed.py \
    --no-baseline --population "$POPULATION" --generations "$GENERATIONS" --warmup "$WARMUP" $BENCH_ARGS \
    --json "$OUT/w$gpus.json" --digest-dir "$OUT/digests/w$gpus"
done
"$PY" scripts/dist_scaling_report.py "$OUT" --requested $GPUS
