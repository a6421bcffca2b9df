#!/usr/bin/env bash
# ParaAlign on IEMOCAP (IEMOCAP_full_release), leave-one-session-out. Set IEMOCAP= in db.sh.
#   ./run.sh [--test_session 5] [palign.sh options]   one fold, in exp/s<N>
#   local/run_folds.sh [palign.sh options]            all five folds
#   ./run.sh --llm tiny [--test_session 5]           the smoke run: every stage on the CPU in minutes, in
#                                                    exp/smoke/s<N> (conf/smoke/ at the top of the checkout)
set -euo pipefail
test_session=5
llm=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --test_session) test_session=$2; shift 2 ;;
        --llm) llm=$2; shift 2 ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;;  # no side effects
        *) args+=("$1"); shift ;;
    esac
done
s=_s${test_session}
opts=(--expdir "exp/s${test_session}" --ngpu 1 --gpu_inference true --teacher_config conf/teacher_llama3_8b.yaml
      --palign_config conf/train_wavlm_large_llama3_8b.yaml --inference_config conf/decode.yaml
      --cls_config ../../../conf/cls_wavlm_large.yaml)  # stage 11: the classifier cascade
if [ -n "${llm}" ]; then . utils/smoke.sh "${llm}" "exp/smoke/s${test_session}"; opts=("${smoke_opts[@]}"); fi

./palign.sh \
    --train_set "train${s}" \
    --valid_set "valid${s}" \
    --test_sets "test${s}" \
    --local_data_opts "--test_session ${test_session}" \
    "${opts[@]}" \
    "${args[@]}"
