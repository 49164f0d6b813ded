#!/usr/bin/env bash
# Bit-identity of the distributed trainer on CPU: gloo runs on 1, 2, 4 and 8 processes, with the
# update sharded across ranks and replicated on every rank, and the plain single-process trainer
# must all end with the same parameters and optimizer state. Exits 1 otherwise.
#   scripts/dist_cpu_identity.sh [OUT_DIR]     (WORLDS="1 2 4 8", UPDATES="sharded replicated")
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-$(mktemp -d -t dist_identity.XXXXXX)}
WORLDS=${WORLDS:-"1 2 4 8"}
UPDATES=${UPDATES:-"sharded replicated"}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=1
rm -rf "$OUT/single" "$OUT"/w*
"$PY" scripts/dist_identity.py --single --out "$OUT/single"
dirs=("$OUT/single")
for world in $WORLDS; do
  for update in $UPDATES; do
    "$PY" -m torch.distributed.run --standalone --nproc-per-node "$world" \
      scripts/dist_identity.py --update "$update" --out "$OUT/w$world-$update"
    dirs+=("$OUT/w$world-$update")
  done
done
"$PY" scripts/dist_digests.py "${dirs[@]}" --json "$OUT/identity.json"
echo "summary: $OUT/identity.json"
