#!/usr/bin/env bash
# Stream points from a drifting Gaussian mixture into Kafka (TopicsConfig.points_topic); pass produce's options through, e.g. `bin/clustering/start_points_producer.sh --k 4 --dim 2 --scenario drift --rate 200`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" produce --source points "$@"
