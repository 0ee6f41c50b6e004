#!/usr/bin/env bash
# Creates .kep/helm-venv, a virtual environment holding helm-python-sdk (Helm v4's Go SDK as a shared
# library: chart loading, `helm lint`, offline rendering and values.schema.json validation, no helm binary),
# when it is missing, broken or holds another version. Prints the venv's python on stdout. It lives under
# .kep/, which git ignores: the venv is machine-specific and never committed.
#
#   scripts/helm-venv.sh            # create or reuse; used by tests/deploy and `make tools`
#   KEP_HELM_PYTHON=/path/python3.12 scripts/helm-venv.sh
#
# Exit codes: 0 ready, 3 no Python >= 3.10 found (the chart tests skip), anything else: a real failure.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_SDK="helm-python-sdk==0.2.2"
VENV="${KEP_HELM_VENV:-.kep/helm-venv}"
STAMP="$VENV/.installed-${HELM_SDK//=/-}"

python_ok() {  # a Python >= 3.10 with the venv module
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 10) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidate
  for candidate in "${KEP_HELM_PYTHON:-}" .venv/bin/python python3.13 python3.12 python3.11 python3.10 python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[0-9]*/bin/python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

install() {
  local python
  if ! python="$(find_python)"; then
    echo "helm-venv: no Python >= 3.10 found (set KEP_HELM_PYTHON); helm-python-sdk needs one" >&2
    exit 3
  fi
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$HELM_SDK" >&2
  "$VENV/bin/python" -c 'import helm_python' >&2
  touch "$STAMP"
}

ready() {  # installed by this script, and still runs (a venv copied from elsewhere does not)
  [ -f "$STAMP" ] && "$VENV/bin/python" -c 'import helm_python' >/dev/null 2>&1
}

if ! ready; then
  mkdir -p "$(dirname "$VENV")"
  # One installer at a time (parallel test workers share the venv).
  exec 9>"${TMPDIR:-/tmp}/kep-helm-venv.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  ready || install
fi
echo "$PWD/$VENV/bin/python"
