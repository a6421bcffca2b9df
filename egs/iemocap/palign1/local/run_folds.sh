#!/usr/bin/env bash
# All five leave-one-session-out folds of IEMOCAP; options go to run.sh (e.g. --stop_stage 2).
set -euo pipefail
for k in 1 2 3 4 5; do
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (run_folds.sh) fold ${k} of 5" >&2
    ./run.sh --test_session "${k}" "$@"
done
