#!/usr/bin/env bash
# The local stack: `bin/infra.sh up | down | status [--json]`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" infra "$@"
