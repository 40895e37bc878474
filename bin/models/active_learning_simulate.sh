#!/usr/bin/env bash
# The active-learning learning-curve experiment (uncertainty vs random sampling); writes learning_curves.csv
# and .png and ends with one JSON line of figures. Pass simulate's options through, e.g.
# `bin/models/active_learning_simulate.sh --synthetic 5000` (no database) or `... --version 1 --seeds 5`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" al simulate "$@"
