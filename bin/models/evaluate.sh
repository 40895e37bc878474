#!/usr/bin/env bash
# Weak labels or a served model against a labelled file: figures overall and per kind, the worst errors,
# a PR curve and a reliability chart; e.g.
# `bin/models/evaluate.sh --gold ../shared/fixtures/labelled/written_dev.tsv --labels` or
# `bin/models/evaluate.sh --gold written_dev.tsv --model-url http://127.0.0.1:8501`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" evaluate "$@"
