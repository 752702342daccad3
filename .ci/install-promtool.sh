#!/usr/bin/env bash
# Install promtool (Debian's `prometheus` package) for tests/test_alerts.py.
# Idempotent and non-interactive: does nothing when promtool is already on PATH.
# The package's service is never started (policy-rc.d denies it during the install).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(promtool --version 2>&1 | head -n1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" = 1 ]; then
    $SUDO rm -f "$policy"
  fi
}
trap cleanup EXIT

if ! $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus
fi

command -v promtool >/dev/null 2>&1 || { echo "promtool still not on PATH after installing prometheus" >&2; exit 1; }
echo "installed: $(promtool --version 2>&1 | head -n1)"
