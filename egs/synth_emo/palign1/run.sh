#!/usr/bin/env bash
# ParaAlign on the embedded synthetic corpus (espeak-ng voices in 4 emotions); runs anywhere, offline.
#   ./run.sh                       SmolLM2-135M-Instruct as the frozen LLM, frozen Whisper tiny.en features and
#                                  3,000 extra word sequences for the encoder's CTC pre-training (2 CPU cores)
#   ./run.sh --llm tiny            a tiny random Llama: a smoke test of every stage in a few minutes; its
#                                  report is exp/smoke/RESULTS.md (the committed RESULTS.md stays as it is)
# Other options go to palign.sh (./palign.sh --help), e.g. --stage 4 --stop_stage 6.
set -euo pipefail

llm=smollm2
stop_stage=100
cls=mel_conformer
results_md=RESULTS.md
teacher_tasks="response response_neutral emotion emotion_neutral asr"
# the main config's data: stage 3 dumps the frozen Whisper features once; the CTC pre-training reads train_words.
# A user's --local_data_opts come after the main config's, so theirs win (e.g. "--words_utterances 100").
main_opts=(--feats_type extracted --pretrain_sets train_words)
main_data_opts="--words_utterances 3000"
user_data_opts=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --llm) llm=$2; shift 2
            if [ "${llm}" = tiny ]; then
                cls=tiny; results_md=exp/smoke/RESULTS.md; main_opts=(); main_data_opts=""
                teacher_tasks="response response_neutral emotion emotion_neutral"
            fi ;;
        --stop_stage) stop_stage=$2; args+=("$1" "$2"); shift 2 ;;
        --local_data_opts) user_data_opts="${user_data_opts} $2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exec ./palign.sh --help ;;  # no side effects
        *) args+=("$1"); shift ;;
    esac
done

if [ "${stop_stage}" -ge 4 ]; then  # the frozen LLM is needed from the teacher stage on
    . ./path.sh
    local/prepare_llm.sh "${llm}"
fi

./palign.sh \
    --train_set train \
    --valid_set valid \
    --test_sets "test test_unseen" \
    --nj 2 \
    --inference_nj 2 \
    --teacher_config "conf/teacher_${llm}.yaml" \
    --teacher_tasks "${teacher_tasks}" \
    --palign_config "conf/train_${llm}.yaml" \
    --inference_config conf/decode.yaml \
    --judge_config "conf/judge_${llm}.yaml" \
    --cls_config "conf/cls_${cls}.yaml" \
    --results_md "${results_md}" \
    --local_data_opts "${main_data_opts} ${user_data_opts}" \
    "${main_opts[@]}" "${args[@]}"
