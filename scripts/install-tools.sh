#!/usr/bin/env bash
# Installs the tools the test suite uses outside .venv, when they are missing. Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
  scripts/apt-install.sh prometheus || echo "warning: promtool missing; the tests that need it will skip" >&2
fi

# The console's browser tests drive Debian's Chromium through its chromedriver (no browser download).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  scripts/apt-install.sh chromium chromium-driver \
    || echo "warning: chromium or chromedriver missing; the console's browser tests will skip" >&2
fi

# The chart's lint and render use Helm's Go SDK from PyPI (helm-python-sdk) in its own venv.
scripts/helm-venv.sh >/dev/null || echo "warning: .kep/helm-venv not created; tests/deploy will retry or skip" >&2
