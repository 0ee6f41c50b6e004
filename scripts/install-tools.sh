#!/usr/bin/env bash
# Installs the tools the test suite uses outside .venv, when they are missing. Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "warning: ${need_apt[*]} missing and apt-get unavailable; the tests that need them will skip" >&2
  fi
fi

# The chart's lint and render use Helm's Go SDK from PyPI (helm-python-sdk) in its own venv.
scripts/helm-venv.sh >/dev/null || echo "warning: .kep/helm-venv not created; tests/deploy will retry or skip" >&2
