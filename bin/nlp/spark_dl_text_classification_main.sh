#!/usr/bin/env bash
# Classify the live tweet stream from Kafka with the served model (start it with bin/models/start_model_server.sh)
# and write classified_tweets_<v>, ai_tweets_<v> and ai_tweet_urls_<v> with Spark; pass classify's options
# through, e.g. `bin/nlp/spark_dl_text_classification_main.sh --version 1 --threshold 0.5 --until-idle 30`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SSP="${SSP:-$ROOT/.venv/bin/ssp}"
exec "$SSP" --gin-file "${SSP_GIN_FILE:-$ROOT/config/default_ssp_config.gin}" classify "$@"
