#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install the pinned dependencies and this package into it.
# Idempotent: a second run with unchanged requirements installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want="$(cat requirements_service.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements_service.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps spliceai==1.3.1
  # pocket detection for docking: its wheel pins matplotlib<3.11 for plots we never draw (docking/README.md)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps pyKVFinder==0.9.6
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
# FlashDock's 3D viewer (3Dmol.js from its pinned npm package, SHA-256 checked; never a CDN at run time).
.venv/bin/python -m flashdock.assets >/dev/null
