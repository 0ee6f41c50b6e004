#!/usr/bin/env bash
# Copies the files the Helm chart embeds from their sources into helm/kep/files/ (Helm reads only files
# inside the chart). tests/deploy fails while a copy differs from its source; run this after editing one.
set -euo pipefail
cd "$(dirname "$0")/.."
cp consumers/observability/alerts.yml helm/kep/files/alerts.yml
cp consumers/observability/dashboard.json helm/kep/files/dashboard.json
echo "helm/kep/files: alerts.yml and dashboard.json copied from their sources"
