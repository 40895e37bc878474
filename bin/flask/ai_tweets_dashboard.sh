#!/usr/bin/env bash
# Serve the AI-tweets dashboard (Flask) for the live classifier's tables; pass dashboard's options
# through, e.g. `bin/flask/ai_tweets_dashboard.sh --version 1 --port 5001`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" dashboard "$@"
