#!/usr/bin/env bash
# Start the registry with the embedded SQLite store. Flags after the script name are passed on,
# e.g. ./start_registry.sh --port 8600 --token T. Environment: REGISTRY_* (see README_SERVICES.md).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
exec .venv/bin/python -m services.registry --store sqlite \
  --host "${REGISTRY_HOST:-127.0.0.1}" --port "${REGISTRY_PORT:-8500}" --db "${REGISTRY_DB:-registry.db}" "$@"
