#!/usr/bin/env bash
# Snorkel's weak labels against the tagger's gold labels on dev and test;
# e.g. `bin/models/evaluate_snorkel_labeller.sh --version 1`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" label evaluate "$@"
