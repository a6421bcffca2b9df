#!/usr/bin/env bash
# ParaAlign on MSP-Podcast (release 1.10 or later; 1.11/1.12 add Test3). Set MSP_PODCAST= in db.sh.
#   ./run.sh [--test_sets "test1 test2 test3"] [palign.sh options]
#   ./run.sh --llm tiny [palign.sh options]   the smoke run: every stage on the CPU in minutes (exp/smoke)
set -euo pipefail
. utils/recipe.sh "$@"  # --llm, --help; the rest for palign.sh
opts=(--ngpu 1 --gpu_inference true --teacher_config conf/teacher_llama3_8b.yaml
      --palign_config conf/train_wavlm_large_llama3_8b.yaml --inference_config conf/decode.yaml
      --cls_config ../../../conf/cls_wavlm_large.yaml)  # stage 11: the classifier cascade
run_recipe --train_set train --valid_set valid --test_sets "test1 test2"
