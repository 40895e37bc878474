#!/usr/bin/env bash
# Serve the exported classifier over TensorFlow Serving's REST API: tensorflow_model_server when it is
# on the PATH, else ssp's own server. Pass serve's options through, e.g.
# `bin/models/start_model_server.sh --model-name naive_text_clf --model-base-path ~/models/naive_text_clf`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" serve "$@"
