#!/usr/bin/env bash
# Run the whole product on its embedded defaults: the registry (SQLite), the workers, a compass-lite
# worker (the shipped compass/weights/compass-lite.skops), a COMPASS worker (compass/weights/compass.skops)
# and FlashDock on :8501.
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
.venv/bin/python -m services.worker.launch echo --replicas "${ECHO_REPLICAS:-2}" --registry "$REGISTRY" &
pids+=($!)
# compass-lite: the shipped checkpoint if compass/weights/ has one, else a tiny model trained once from examples/.
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
  LITE_ARGS=(--weights "$LITE")
fi
OMP_NUM_THREADS=1 .venv/bin/python -m compass.service.worker --model compass-lite --port 0 --registry "$REGISTRY" \
  "${LITE_ARGS[@]}" &
pids+=($!)
# COMPASS: the shipped descriptor stack (compass/weights/compass.skops); the Router falls back to compass-lite.
if [ -f compass/weights/compass.skops ]; then
  OMP_NUM_THREADS=1 .venv/bin/python -m compass.service.worker --model compass --port 0 --registry "$REGISTRY" &
  pids+=($!)
fi
FLASHDOCK_REGISTRY_URL="$REGISTRY" .venv/bin/python -m streamlit run flashdock/Home.py --server.headless true \
  --server.port "${FLASHDOCK_PORT:-8501}" --browser.gatherUsageStats false &
pids+=($!)
echo "registry: $REGISTRY  (catalog: $REGISTRY/api/v1/catalog)"
echo "FlashDock: http://127.0.0.1:${FLASHDOCK_PORT:-8501}  Ctrl-C to stop"
wait -n
