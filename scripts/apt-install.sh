#!/usr/bin/env bash
# Usage: scripts/apt-install.sh PACKAGE...
# Installs Debian packages quietly when the user may (root with apt-get); exits 1 naming them otherwise.
set -euo pipefail
[ $# -gt 0 ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install $* (needs root and apt-get)" >&2
  exit 1
fi
echo "installing $* (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
