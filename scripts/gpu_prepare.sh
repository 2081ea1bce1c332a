#!/usr/bin/env bash
# Prepare a COMPASS training run on a GPU machine that has torch and torch_geometric but no RDKit,
# no ../shared and no network: featurise here and fetch the few wheels it lacks, all under
# .carry/ (git-ignored, ~35 MB). Carry ".carry" and run scripts/gpu_train.sh there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${SHARED_DATA:-../shared/data}

"$PY" -m compass.data.pack "$DATA/fep" "$DATA/pdbqt_extra" "$DATA/casf2016" \
  --out .carry/compass --exclude-ids "$DATA/pdbbind/casf2016_core_ids.txt" --no-progress
# safetensors (checkpoints), matplotlib (scatter plots), tqdm: wheels for the GPU machine's Python.
# Its own numpy stays: a second one would only risk torch's.
rm -rf .carry/wheels
"$PY" -m pip download -q --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d .carry/wheels safetensors matplotlib tqdm
rm -f .carry/wheels/numpy-*.whl
du -sh .carry
