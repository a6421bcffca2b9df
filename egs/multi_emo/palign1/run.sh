#!/usr/bin/env bash
# ParaAlign on IEMOCAP + MSP-Podcast + Expresso with a shared label space (conf/shared_labels.yaml).
# Set IEMOCAP=, MSP_PODCAST= and EXPRESSO= in db.sh.
set -euo pipefail
case " $* " in *" --help "*|*" -h "*) sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;; esac
./palign.sh \
    --train_set train \
    --valid_set valid \
    --test_sets "iemocap_test msp_podcast_test1 expresso_test" \
    --ngpu 1 --gpu_inference true \
    --teacher_config conf/teacher_llama3_8b.yaml \
    --palign_config conf/train_wavlm_large_llama3_8b.yaml \
    --inference_config conf/decode.yaml \
    "$@"
