#!/usr/bin/env bash
# The live Bokeh view of the clustering on http://127.0.0.1:5006/; e.g. `bin/clustering/cluster_view.sh --version 0`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" cluster view "$@"
