#!/usr/bin/env bash
# Serve the tagger (Flask): annotators give the dataset tables their gold labels, the active-learning queue
# first. Needs SSP_TAGGER_TOKEN (the shared sign-in token); pass tagger's options through, e.g.
# `SSP_TAGGER_TOKEN=... bin/flask/tagger.sh --port 5002 --model-url http://127.0.0.1:8501`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" tagger "$@"
