#!/usr/bin/env bash
# ParaAlign on the embedded synthetic corpus (espeak-ng voices in 4 emotions); runs anywhere, offline.
set -euo pipefail

train_set=train
valid_set=valid
test_sets="test test_unseen"

./palign.sh \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --nj 2 \
    "$@"
