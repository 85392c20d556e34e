#!/usr/bin/env bash
# Lint (ruff) and type-check (mypy) the tree with the versions pinned in the controller
# lock, configured in pyproject.toml (which makes both check build/, piforge's package,
# that they would skip by default as a "build directory"). Exit status non-zero on any finding.
# Usage: scripts/lint.sh   (uses ./piforge's venv, creating it if needed)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${PIFORGE_VENV:-$here/.venv}"
if [ ! -x "$venv/bin/ruff" ] || [ ! -x "$venv/bin/mypy" ]; then
  ./piforge list >/dev/null   # makes (or refreshes) the venv from the lock
fi
echo "lint: ruff check" >&2
"$venv/bin/ruff" check .
echo "lint: mypy (build/, tests/, dodo.py, bench/, jobs/)" >&2
"$venv/bin/mypy"
