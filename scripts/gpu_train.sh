#!/usr/bin/env bash
# On the GPU machine (after scripts/gpu_prepare.sh here): train the GPU plan for each seed and
# score each best checkpoint on CASF-2016. Everything lands under $OUT (default runs/gpu):
# runs/gpu-s<seed>/ (checkpoints, metrics.jsonl, train.log) and casf-s<seed>/ (metrics, predictions).
# SEEDS ("0 1 2"), PLAN, MAX_EPOCHS (a smoke run) and PYTHON (python3) override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PLAN=${PLAN:-compass/weights/plans/compass-gpu.json}
DEST=${OUT:-runs/gpu}
export HF_HUB_OFFLINE=1

if [[ -d .carry/wheels ]] && ! "$PY" -c "import safetensors, matplotlib" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --find-links .carry/wheels safetensors matplotlib tqdm
fi
epochs=()
if [[ -n "${MAX_EPOCHS:-}" ]]; then epochs=(--max-epochs "$MAX_EPOCHS"); fi
for seed in ${SEEDS:-0 1 2}; do
  "$PY" -m compass.train "$PLAN" --seed "$seed" --run-id "gpu-s$seed" --runs-dir "$DEST/runs" \
    --no-progress "${epochs[@]}"
  "$PY" -m compass.evaluate --set casf2016 --data .carry/compass/casf2016.pt \
    --checkpoint "$DEST/runs/gpu-s$seed/best.safetensors" --out "$DEST/casf-s$seed" --no-progress
done
