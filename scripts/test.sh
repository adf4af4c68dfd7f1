#!/usr/bin/env bash
# The whole test suite: lint, format, types, then pytest (and the front end's tests when it exists).
# Uses DATABASE_URL / REDIS_URL when set, else an embedded PostgreSQL and Redis under var/test/.
# Extra arguments go to pytest, e.g. scripts/test.sh -k health -x
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv dev
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$PWD/var/run}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

echo "== ruff check"
.venv/bin/ruff check .
echo "== ruff format --check"
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
