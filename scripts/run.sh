#!/usr/bin/env bash
# Runs the whole platform in the foreground: ./scripts/run.sh  (Ctrl-C stops everything).
# Uses DATABASE_URL / REDIS_URL when set, else an embedded PostgreSQL and Redis with data under var/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv local
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$PWD/var/run}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
exec .venv/bin/python scripts/run.py "$@"
