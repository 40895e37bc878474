#!/usr/bin/env bash
# Train the AI-tweet text classifier on train_/dev_/test_dataset_<version> and export it as the next
# SavedModel version under <model_dir>/naive_text_clf/; pass train's options through,
# e.g. `bin/models/build_naive_dl_text_classifier.sh --version 1 --architecture bilstm`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" train "$@"
