#!/usr/bin/env bash
# Installs a headless Chromium from Debian's apt (no browser downloads from
# elsewhere) for the explorer's browser test. Does nothing when one is present.
set -euo pipefail
for bin in chromium-headless-shell chromium chromium-browser; do
  if command -v "$bin" >/dev/null 2>&1; then
    echo "browser present: $(command -v "$bin")"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# chromium-headless-shell is smaller but only in newer Debian releases.
if apt-cache show chromium-headless-shell >/dev/null 2>&1; then
  $SUDO apt-get install -y -q --no-install-recommends chromium-headless-shell
else
  $SUDO apt-get install -y -q --no-install-recommends chromium
fi
