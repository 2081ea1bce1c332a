#!/usr/bin/env bash
# Install the Debian packages the tests need (as root; skipped with a note otherwise).
set -euo pipefail
PACKAGES=(etcd-server chromium chromium-driver prometheus)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "note: not root, cannot apt-get install ${missing[*]}; tests that need them will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
