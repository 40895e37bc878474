#!/usr/bin/env bash
# Land the tweet stream from Kafka in PostgreSQL (raw_tweet_dataset_<version>) with Spark;
# pass ingest's options through, e.g. `bin/data/dump_raw_data_into_postgresql.sh --version 1 --until-idle 30`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" ingest "$@"
