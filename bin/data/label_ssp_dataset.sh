#!/usr/bin/env bash
# Weak labels with Snorkel for a prepared dataset version (slabel/slabel_prob in the split tables);
# pass label's options through, e.g. `bin/data/label_ssp_dataset.sh --version 1 --engine spark`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" label "$@"
