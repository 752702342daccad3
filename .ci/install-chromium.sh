#!/usr/bin/env bash
# Install headless Chromium (Debian's `chromium` package) for tests/e2e/test_report_html.py,
# which renders report.html and screenshots it. Idempotent and non-interactive: does nothing
# when chromium is already on PATH. Installs no browser service; nothing is started.
set -euo pipefail

find_chromium() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

if [ -n "$(find_chromium)" ]; then
  echo "chromium already installed: $("$(find_chromium)" --version 2>/dev/null | head -n1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive

if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
fi

[ -n "$(find_chromium)" ] || { echo "chromium still not on PATH after installing the chromium package" >&2; exit 1; }
echo "installed: $("$(find_chromium)" --version 2>/dev/null | head -n1)"
