#!/usr/bin/env bash
# ParaAlign on Expresso (read speech, 8 styles; 48 kHz resampled to 16 kHz in stage 2). Set EXPRESSO= in db.sh.
set -euo pipefail
case " $* " in *" --help "*|*" -h "*) sed -n '2,2p' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;; esac
./palign.sh \
    --train_set train \
    --valid_set valid \
    --test_sets test \
    --ngpu 1 --gpu_inference true \
    --teacher_config conf/teacher_llama3_8b.yaml \
    --palign_config conf/train_wavlm_large_llama3_8b.yaml \
    --inference_config conf/decode.yaml \
    "$@"
