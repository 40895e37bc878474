#!/usr/bin/env bash
# Stream tweets into Kafka: synthetic by default; pass produce's options through,
# e.g. `bin/data/start_kafka_producer.sh --source replay --path tweets.jsonl --rate 100`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" produce "$@"
