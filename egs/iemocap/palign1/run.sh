#!/usr/bin/env bash
# ParaAlign on IEMOCAP (IEMOCAP_full_release), leave-one-session-out. Set IEMOCAP= in db.sh.
#   ./run.sh [--test_session 5] [palign.sh options]   one fold, in exp/s<N>
#   local/run_folds.sh [palign.sh options]            all five folds
#   ./run.sh --llm tiny [--test_session 5]           the smoke run: every stage on the CPU in minutes, in
#                                                    exp/smoke/s<N> (conf/smoke/ at the top of the checkout)
set -euo pipefail
test_session=5
recipe_vars=test_session
. utils/recipe.sh "$@"  # --test_session, --llm, --help; the rest for palign.sh
s=_s${test_session}
opts=(--expdir "exp/s${test_session}" --ngpu 1 --gpu_inference true --teacher_config conf/teacher_llama3_8b.yaml
      --palign_config conf/train_wavlm_large_llama3_8b.yaml --inference_config conf/decode.yaml
      --cls_config ../../../conf/cls_wavlm_large.yaml)  # stage 11: the classifier cascade
smoke_exp=exp/smoke/s${test_session}
run_recipe --train_set "train${s}" --valid_set "valid${s}" --test_sets "test${s}" \
    --local_data_opts "--test_session ${test_session}"
