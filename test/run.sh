#!/usr/bin/env bash
# The test command: install tools/venv if needed (idempotent), then run the whole test suite.
#   bash test/run.sh [pytest args ...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
exec tools/venv/bin/python -m pytest -q -p no:cacheprovider "${@:-test}"
