#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks and the whole test suite.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/tools/install.sh" --test
venv=${COVE_VENV:-/opt/cove/venv}
cd "$repo"
echo "--- ruff"
"$venv/bin/ruff" check src tests bench
"$venv/bin/ruff" format --check src tests bench
echo "--- mypy"
"$venv/bin/mypy"
echo "--- pytest"
PATH="${COVE_BINDIR:-/usr/local/bin}:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
