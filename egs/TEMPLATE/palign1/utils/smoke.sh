#!/usr/bin/env bash
# Sourced by a corpus run.sh for --llm tiny: the palign.sh options of a smoke run of that recipe, in the
# array smoke_opts. It runs every stage on the CPU in minutes with a tiny random LLM (made here once, from
# synth_emo's sentences) and the shared conf/smoke/ configs, and writes only under its exp dir (default
# exp/smoke) with its own report there: no committed result is touched. Its numbers mean nothing.
#   . utils/smoke.sh tiny [EXPDIR]
[ "${1:-}" = tiny ] || { echo "run.sh: --llm takes 'tiny' (the smoke run); the real LLM is in conf/" >&2; exit 2; }
smoke_exp=${2:-exp/smoke}
. ./path.sh
[ -d downloads/llm/tiny-llama ] || python -m espnet_ext.bin.prepare_llm --source tiny --out downloads/llm/tiny-llama \
    --corpus "${MAIN_ROOT}/egs/synth_emo/palign1/local/sentences.txt"
smoke_opts=(--ngpu 0 --gpu_inference false --nj 2 --inference_nj 1 --expdir "${smoke_exp}"
    --teacher_config "${MAIN_ROOT}/conf/smoke/teacher.yaml"
    --teacher_tasks "response response_neutral emotion emotion_neutral" --palign_config "${MAIN_ROOT}/conf/smoke/train.yaml"
    --judge_config "${MAIN_ROOT}/conf/smoke/judge.yaml" --cls_config "${MAIN_ROOT}/conf/smoke/cls.yaml"
    --inference_config conf/decode.yaml --results_md "${smoke_exp}/RESULTS.md")
