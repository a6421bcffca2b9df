#!/usr/bin/env bash
# All five leave-one-session-out folds of IEMOCAP, then the scores averaged over the folds
# (exp/folds_average.json). Options go to run.sh (e.g. --stop_stage 2).
set -euo pipefail
for k in 1 2 3 4 5; do
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (run_folds.sh) fold ${k} of 5" >&2
    ./run.sh --test_session "${k}" "$@"
done
if find exp/s1 -name scores.json 2>/dev/null | grep -q .; then  # scoring (stage 8) was run
    . ./path.sh
    python -m espnet_ext.bin.average_folds exp/s1 exp/s2 exp/s3 exp/s4 exp/s5 --output exp/folds_average.json
fi
