#!/usr/bin/env bash
# The test command: install tools/venv and the test browser if needed (idempotent), then run the whole
# test suite on PALIGN_TEST_WORKERS pytest-xdist workers (default 2; 0 runs it in this process).
#   bash test/run.sh [pytest args ...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
tools/install_browser.sh  # chromium + chromedriver for the demo's browser test
# --durations: the CI log lists the slowest tests, for keeping the suite inside its 30 minutes
exec tools/venv/bin/python -m pytest -q -p no:cacheprovider -n "${PALIGN_TEST_WORKERS:-2}" --dist worksteal \
    --durations=15 --durations-min=30 "${@:-test}"
