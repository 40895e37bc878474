#!/usr/bin/env bash
# Install the Debian packages ssp needs that pip cannot provide, when they are missing:
# maven (fetches the Kafka and Spark-connector jars) and, with --test, chromium (browser tests).
set -euo pipefail
missing=()
command -v mvn >/dev/null || missing+=(maven)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || [ -n "${SSP_CHROMIUM:-}" ] || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing ${missing[*]} with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null; then
  echo "installing ${missing[*]} with sudo apt-get" >&2
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "ssp needs these system packages: ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
  exit 1
fi
