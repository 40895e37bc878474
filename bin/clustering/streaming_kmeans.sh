#!/usr/bin/env bash
# Streaming k-means on the points topic, one model update per micro-batch, written to PostgreSQL; e.g. `bin/clustering/streaming_kmeans.sh --k 4 --half-life 20`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" cluster stream --algorithm kmeans "$@"
