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
if [ -f frontend/package.json ] && [ "${SKIP_FRONTEND:-0}" != "1" ]; then
  # The front end: dependencies reinstalled only when package-lock.json changed, then lint, types, tests, build.
  (
    cd frontend
    lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [ ! -d node_modules ] || [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
      echo "== npm ci (frontend)"
      npm ci --no-audit --no-fund
      echo "$lock_sum" > node_modules/.lock-sha256
    fi
    echo "== eslint (frontend)"
    npm run --silent lint
    echo "== tsc (frontend)"
    npm run --silent typecheck
    echo "== vitest (frontend)"
    npm test --silent -- --run
    echo "== vite build (frontend)"
    npm run --silent build
  )
fi
echo "== pytest"
.venv/bin/python -m pytest "$@"
