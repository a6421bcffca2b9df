#!/usr/bin/env bash
# ParaAlign on IEMOCAP + MSP-Podcast + Expresso with a shared label space (conf/shared_labels.yaml).
# Set IEMOCAP=, MSP_PODCAST= and EXPRESSO= in db.sh.
#   ./run.sh --llm tiny [palign.sh options]   the smoke run: every stage on the CPU in minutes (exp/smoke)
set -euo pipefail
. utils/recipe.sh "$@"  # --llm, --help; the rest for palign.sh
opts=(--ngpu 1 --gpu_inference true --teacher_config conf/teacher_llama3_8b.yaml
      --palign_config conf/train_wavlm_large_llama3_8b.yaml --inference_config conf/decode.yaml
      --cls_config ../../../conf/cls_wavlm_large.yaml)  # stage 11: the classifier cascade
run_recipe --train_set train --valid_set valid --test_sets "iemocap_test msp_podcast_test1 expresso_test"
