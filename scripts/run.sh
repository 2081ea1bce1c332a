#!/usr/bin/env bash
# Run the whole product on its embedded defaults: the registry (SQLite) and the workers.
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
echo "registry: $REGISTRY  (catalog: $REGISTRY/api/v1/catalog)  Ctrl-C to stop"
wait -n
