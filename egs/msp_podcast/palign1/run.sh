#!/usr/bin/env bash
# ParaAlign on MSP-Podcast (release 1.10 or later; 1.11/1.12 add Test3). Set MSP_PODCAST= in db.sh.
#   ./run.sh [--test_sets "test1 test2 test3"] [palign.sh options]
set -euo pipefail
case " $* " in *" --help "*|*" -h "*) sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;; esac
./palign.sh \
    --train_set train \
    --valid_set valid \
    --test_sets "test1 test2" \
    --ngpu 1 --gpu_inference true \
    --teacher_config conf/teacher_llama3_8b.yaml \
    --palign_config conf/train_wavlm_large_llama3_8b.yaml \
    --inference_config conf/decode.yaml \
    "$@"
