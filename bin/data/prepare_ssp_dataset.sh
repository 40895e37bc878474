#!/usr/bin/env bash
# Deduplicate raw_tweet_dataset_<version> and split it into test/dev/snorkel_train/train tables;
# pass prepare's options through, e.g. `bin/data/prepare_ssp_dataset.sh --version 1 --overwrite`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" dataset prepare "$@"
