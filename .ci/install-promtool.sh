#!/usr/bin/env bash
# Install Debian's `prometheus` package: promtool for tests/deploy/test_alerts.py and
# the prometheus server for tests/e2e/test_prometheus.py (both come in the one package).
# Idempotent and non-interactive: does nothing when both are already on PATH.
# The package's service is never started (policy-rc.d denies it during the install).
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  echo "promtool and prometheus already installed: $(promtool --version 2>&1 | head -n1)"
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

for tool in promtool prometheus; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool still not on PATH after installing Debian's prometheus package" >&2; exit 1; }
done
echo "installed: $(promtool --version 2>&1 | head -n1); $(prometheus --version 2>&1 | head -n1)"
