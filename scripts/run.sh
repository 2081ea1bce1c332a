#!/usr/bin/env bash
# Run the whole product on its embedded defaults: the registry (SQLite), one worker of every kind
# (COMPASS, compass-lite, antiberty, splice, codon and each kind added to services/worker/launch.py)
# and FlashDock on 127.0.0.1:8501. FLASHDOCK_PROFILE=small: compass-lite and codon only.
# Ctrl-C stops everything (workers drain and deregister first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PORT="${REGISTRY_PORT:-8500}"
REGISTRY="http://127.0.0.1:${PORT}"
mkdir -p .data
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap cleanup INT TERM EXIT

REGISTRY_DB="${REGISTRY_DB:-.data/registry.db}" bash start_registry.sh &
pids+=($!)
.venv/bin/python - "$REGISTRY" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1] + "/health", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("registry did not come up within 30 s")
PY
# The fleet: every kind services/worker/launch.py knows (echo, the internal test service, and hf, a template for
# any Hugging Face model, left out), one replica each. FLASHDOCK_PROFILE=small starts compass-lite and codon only
# (README: memory). FLEET_KINDS="compass-lite splice" picks any set.
if [ -z "${FLEET_KINDS:-}" ]; then
  FLEET_KINDS="$(.venv/bin/python - "${FLASHDOCK_PROFILE:-full}" <<'PY'
import sys
from services.worker.launch import KINDS, module_available
small = ("compass-lite", "codon")
kinds = [k for k, (module, _) in KINDS.items() if k not in ("echo", "hf") and module_available(module)]
print(" ".join(k for k in kinds if sys.argv[1] != "small" or k in small))
PY
)"
fi
# compass-lite without shipped weights: a tiny model trained once from examples/ (a fresh checkout keeps them).
LITE_ARGS=()
if ! ls compass/weights/*.skops >/dev/null 2>&1; then
  LITE=.data/runs/flashdock-lite/best.skops
  if [ ! -f "$LITE" ]; then
    echo "training a tiny compass-lite model from examples/complexes (first run only)..."
    printf '{"seed": 0, "data": {"roots": ["%s/examples/complexes"]}, "split": {"kind": "none"}, "model": {"kind": "compass-lite", "config": {"max_iter": 50, "min_samples_leaf": 1}}, "device": "cpu"}\n' "$PWD" > .data/flashdock-lite-plan.json
    OMP_NUM_THREADS=1 .venv/bin/python -m compass.train .data/flashdock-lite-plan.json --runs-dir .data/runs \
      --run-id flashdock-lite --no-progress >.data/flashdock-lite-train.log 2>&1 \
      || { echo "tiny compass-lite training failed: see .data/flashdock-lite-train.log"; exit 1; }
  fi
  LITE_ARGS=(-- --weights "$LITE")
fi
for kind in $FLEET_KINDS; do
  extra=()
  [ "$kind" = compass-lite ] && extra=("${LITE_ARGS[@]}")
  OMP_NUM_THREADS=1 .venv/bin/python -m services.worker.launch "$kind" --registry "$REGISTRY" "${extra[@]}" \
    >".data/$kind.log" 2>&1 &
  pids+=($!)
done
# FlashDock on loopback (python -m flashdock refuses another address unless a login is configured).
FLASHDOCK_REGISTRY_URL="$REGISTRY" .venv/bin/python -m flashdock --host "${FLASHDOCK_HOST:-127.0.0.1}" \
  --port "${FLASHDOCK_PORT:-8501}" &
pids+=($!)
echo "workers: $FLEET_KINDS (logs in .data/<kind>.log; they register within a minute)"
echo "registry: $REGISTRY  (catalog: $REGISTRY/api/v1/catalog)"
echo "FlashDock: http://127.0.0.1:${FLASHDOCK_PORT:-8501}  Ctrl-C to stop"
wait -n
