# Shared by scripts/run.sh and scripts/test.sh: create .venv and install the project when pyproject.toml changed.
ensure_venv() {
  local extra="$1"
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv ..."
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed-${extra}-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "Installing the project and its '${extra}' dependencies (first run only) ..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[${extra}]"
    rm -f .venv/.installed-"${extra}"-*
    touch "$stamp"
  fi
}
