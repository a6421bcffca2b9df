#!/usr/bin/env bash
# Stage 1 of IEMOCAP: data/{train,valid,test}_s<N> for test session N (leave-one-session-out).
set -euo pipefail
test_session=5     # the held-out session (1-5)
label_map=4class   # 4class (neu, hap+exc, ang, sad) | 4class_noexc | 6class | all
valid_ratio=0.1    # share of the training sessions' dialogs kept for validation
split=loso         # loso | espnet (ESPnet's recipe split: train Ses01-03 + Ses04F, valid Ses04M, test Ses05)
help_message="Usage: $0 [--test_session N] [--label_map 4class|4class_noexc|6class|all] [--valid_ratio R] [--split loso|espnet]"
. utils/parse_options.sh
. ./db.sh
require_db IEMOCAP
python -m espnet_ext.bin.prepare_corpus iemocap --root "${IEMOCAP}" --out data --test_session "${test_session}" \
    --label_map "${label_map}" --valid_ratio "${valid_ratio}" --suffix "_s${test_session}" --split "${split}"
