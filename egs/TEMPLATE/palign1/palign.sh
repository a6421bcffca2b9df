#!/usr/bin/env bash
# ParaAlign recipe stages, shared by every egs/<corpus>/palign1/run.sh (ESPnet's asr.sh, made short).
set -euo pipefail

log() {
    echo "$(date '+%Y-%m-%dT%H:%M:%S') (palign.sh:${BASH_LINENO[0]}) $*" >&2
    # Stage starts and ends go to a timeline that RESULTS.md reports.
    if [[ "$*" =~ ^(Stage [0-9]+|Finished) ]] && [ -n "${expdir:-}" ]; then
        mkdir -p "${expdir}"; echo "$(date +%s) ${BASH_REMATCH[1]}" >> "${expdir}/stage_times"
    fi
}
min() { echo $(( $1 < $2 ? $1 : $2 )); }
threads_per_job() { local t; t=$(( $(nproc) / $1 )); echo $(( t > 0 ? t : 1 )); }  # $1 parallel jobs share the CPUs

# General
stage=1                # first stage to run
stop_stage=100         # last stage to run
nj=4                   # parallel jobs for data preparation and teacher generation
inference_nj=2         # parallel jobs for decoding
ngpu=0                 # GPUs for training (0: CPU)
gpu_inference=false    # decode on GPU
dumpdir=dump           # features and formatted audio
expdir=exp             # models, decodes, scores
python=python3

# Data
local_data_opts=""     # passed to local/data.sh
train_set=""           # name of the training set under data/
valid_set=""           # name of the validation set
test_sets=""           # names of the test sets, space separated
pretrain_sets=""       # more sets for stage 6's encoder pre-training only (beside --train_set; no teacher
                       # targets: the transcript and the emotion label), e.g. synth_emo's train_words
feats_type=raw         # raw: the frontend runs inside the model; extracted: stage 3 dumps the training
                       # config's frontend features once (a frozen pre-trained frontend: whisper_pitch) and
                       # stages 5-6 read them (decoding still starts from audio, through the same frontend)
fs=16000               # sample rate after stage 2
min_dur=0.1            # stage 2 drops shorter utterances (seconds)
max_dur=30.0           # stage 2 drops longer utterances (seconds)

# Teacher (stage 4)
teacher_config=""      # YAML: llm_conf, prompt_conf, batch_size, max_new_tokens
teacher_tasks="response response_neutral"  # targets to generate: each task of the training config, and
                       # its _neutral version for the semantic-only baseline (e.g. emotion emotion_neutral)
teacher_nj=""          # parallel teacher jobs (default: --nj)
teacher_python=""      # python of the generate step (default: --python; backend: vllm: tools/venv_vllm/bin/python)

# Training (stages 5-6)
palign_config=""       # training YAML
palign_args=""         # more options for espnet_ext.bin.palign_train
palign_tag=""          # experiment name (default: from the config file name)
palign_target=response # the data file the encoder is aligned to (response_neutral: semantic-only baseline)
num_threads=$(nproc)   # CPU threads of the training job

# Decoding (stage 7)
inference_config=""    # YAML of espnet_ext.bin.palign_inference options
inference_args=""      # more options for it
inference_model=""     # model file in the experiment dir (default: averaged/best/last)
inference_tag=""       # decode dir name (default: from the inference config)
inference_transcripts="" # for a model whose prompt reads the transcript: DIR with <set>/text (e.g. stage 9's
                       # ${expdir}/baselines/asr); default each set's own text

# Scoring and baselines (stages 8-12)
judge_config=""        # YAML: llm_conf, judge_prompt, prompt_conf (empty: no LLM-as-judge score)
bertscore_model=roberta-large  # BERTScore model, used if on this machine (else all-MiniLM-L6-v2 cosine)
probe_max_utts=600     # training utterances used to fit the linear probe
baselines="topline text_oracle text_asr emotion_only reworded semantic cls"  # systems of stages 9-11
reworded_description="The user feels {emotion}"  # the reworded reference's emotion clause (teacher's: prompt config)
cls_config=""          # ESPnet cls config of the emotion classifier (stage 11)
results_md=RESULTS.md  # stage 12's report (plots in images/ beside it); a smoke run writes its own elsewhere

help_message=$(cat << EOF
Usage: $0 --train_set <name> --valid_set <name> --test_sets "<name> ..." [options]
Stages: 1 data prep (local/data.sh) . 2 audio format (${fs} Hz mono, duration filter)
        3 frontend features (--feats_type extracted) . 4 teacher replies . 5 stats/shapes
        6 training (first an encoder pre-training without the LLM if the config has pretrain_conf, then the
          semantic-only model's first epochs if it has prealign_conf) . 7 decoding
Options (defaults after the names):
  --stage ${stage}  --stop_stage ${stop_stage}  --nj ${nj}  --inference_nj ${inference_nj}
  --ngpu ${ngpu}  --gpu_inference ${gpu_inference}  --dumpdir ${dumpdir}  --expdir ${expdir}
  --local_data_opts "..."   options for local/data.sh
  --feats_type ${feats_type}  --fs ${fs}  --min_dur ${min_dur}  --max_dur ${max_dur}
  --teacher_config FILE  --teacher_tasks "${teacher_tasks}"  --teacher_nj N  --teacher_python PYTHON
  --palign_config FILE  --palign_args "..."  --palign_tag NAME  --palign_target ${palign_target}
  --num_threads ${num_threads}
  --inference_config FILE  --inference_args "..."  --inference_model FILE  --inference_tag NAME
  --inference_transcripts DIR
  --judge_config FILE  --bertscore_model ${bertscore_model}  --probe_max_utts ${probe_max_utts}
  --baselines "${baselines}"  --reworded_description "${reworded_description}"  --cls_config FILE
  --results_md ${results_md}
Stages 8-12: 8 scoring . 9 text baselines (topline, text_oracle, text_asr, emotion_only, reworded) . 10 semantic-only alignment
        . 11 cascade with an ESPnet emotion classifier . 12 RESULTS.md
EOF
)

log "$0 $*"
orig_args=("$@")
. utils/parse_options.sh
[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 2; }
. ./path.sh
. ./cmd.sh
[ -n "$train_set" ] || { log "--train_set is required"; exit 2; }
[ -n "$valid_set" ] || { log "--valid_set is required"; exit 2; }
all_sets="${train_set} ${valid_set} ${test_sets}"
data_sets="${all_sets} ${pretrain_sets}"  # the sets of stages 1-3 and the speaker statistics
pretrain_set=${train_set}  # what the encoder pre-training reads: the train set with --pretrain_sets
[ -n "${pretrain_sets// /}" ] && pretrain_set=${train_set}_pretrain
teacher_nj=${teacher_nj:-${nj}}
for _opt in stage stop_stage nj inference_nj teacher_nj ngpu probe_max_utts; do
    [[ "${!_opt}" =~ ^[0-9]+$ ]] || { log "--${_opt} must be a whole number, got '${!_opt}'"; exit 2; }
done
teacher_python=${teacher_python:-${python}}
data_feats=${dumpdir}/raw
[ -z "${palign_tag}" ] && [ -n "${palign_config}" ] && palign_tag=$(basename "${palign_config}" .yaml)
base_tag=${palign_tag}; orig_target=${palign_target}
use_target() {  # the model aligned to target $1: palign_target, palign_tag, palign_exp (stage 10 switches)
    palign_target=$1; palign_tag=${base_tag}
    [ "$1" = response ] || palign_tag=${base_tag}_$1
    palign_exp=${expdir}/palign_${palign_tag}
}
use_target "${palign_target}"
stats_dir=${expdir}/stats/${base_tag:-default}  # per training config: another frontend has other feature statistics
teacher_dir=${expdir}/$(basename "${teacher_config:-teacher}" .yaml)
[ -z "${inference_tag}" ] && inference_tag=$(basename "${inference_config:-decode}" .yaml)
if "${gpu_inference}"; then _device=cuda; else _device=cpu; fi
mkdir -p "${expdir}"  # every command line, appended with its date and commit, as ESPnet keeps exp/*/run.sh
{ echo "# $(date -Iseconds) commit $(git -C "${MAIN_ROOT}" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf '%q ' "$0" "${orig_args[@]}"; echo; } >> "${expdir}/run_history.sh"
# conf_get FILE KEY: a value of a YAML config (KEY may be dotted: aux_conf.weight; lists joined by spaces)
conf_get() { ${python} -c "
import sys
from espnet_ext import yaml_file
v = yaml_file.load(sys.argv[1]) or {}
for k in sys.argv[2].split('.'):
    v = v.get(k) if isinstance(v, dict) else None
print(' '.join(map(str, v)) if isinstance(v, list) else ('' if v is None else v))" "$1" "$2"; }
# conf_args FILE KEY: a dict of a YAML config as command-line options, one word a line (--name, then its value;
# a dict or list as JSON, which ESPnet's NestedDictAction reads as YAML). Read them with mapfile, never split.
conf_args() { ${python} -c "
import json, sys
from espnet_ext import yaml_file
v = (yaml_file.load(sys.argv[1]) or {}).get(sys.argv[2]) or {}
for k, x in v.items():
    print(f'--{k}'); print(json.dumps(x, separators=(',', ':')) if isinstance(x, (dict, list)) else x)" "$1" "$2"; }
require() { for v in "$@"; do [ -n "${!v}" ] || { log "--${v} is required for stage ${_stage}"; exit 2; }; done; }
# need FILE ...: stop before a stage runs without what earlier stages write, naming the first to run
need() {
    local f s first="" missing=()
    for f in "$@"; do
        [ -e "${f}" ] && continue
        case "${f}" in
            "${teacher_dir}"/*) s=4 ;; "${expdir}"/stats/*|"${expdir}"/spk_stats/*) s=5 ;;
            "${expdir}"/palign_*) s=6 ;; "${data_feats}"/*) s=2 ;; "${dumpdir}"/feats_*) s=3 ;; *) s=0 ;;
        esac
        missing+=("${f}")
        if [ -z "${first}" ] || [ "${s}" -lt "${first%% *}" ]; then first="${s} ${f}"; fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    s=${first%% *}; f=${first#* }
    if [ "${s}" = 0 ]; then log "stage ${_stage} needs ${f}, which is missing"
    elif [ "${s}" = 4 ] && [ -e "${teacher_dir}/meta.yaml" ]; then
        log "stage ${_stage} needs ${f}: stage 4 ran without its task; add $(basename "${f}") to --teacher_tasks" \
            "(now '${teacher_tasks}') and rerun stage 4"
    else log "stage ${_stage} needs ${f}, which stage ${s} writes: run stage ${s} first (--stage ${s})"; fi
    [ ${#missing[@]} -gt 1 ] && log "(${#missing[@]} inputs missing in all: ${missing[*]})"
    exit 2
}
speaker_norm=False; spk_stats=""; feats_dir=""
if [ -n "${palign_config}" ]; then
    [ "$(conf_get "${palign_config}" speaker_norm)" = True ] && speaker_norm=True
    spk_stats=${expdir}/spk_stats/$(basename "${palign_config}" .yaml)
    # stage 3's, --feats_type extracted: one dir per frontend and options (an ablation's own frontend_conf gets its own)
    if [ "${feats_type}" = extracted ]; then
        feats_dir=${dumpdir}/$(${python} -m espnet_ext.bin.dump_feats --dir_name "${palign_config}")
    fi
fi
case "${feats_type}" in raw|extracted) ;; *) log "--feats_type must be raw or extracted, got '${feats_type}'"; exit 2 ;; esac

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation (local/data.sh ${local_data_opts})"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for dset in ${data_sets}; do
        utils/validate_data_dir.sh "data/${dset}"
    done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: format audio to ${fs} Hz mono WAV in ${dumpdir}/raw, keep ${min_dur}-${max_dur} s"
    for dset in ${data_sets}; do
        src=data/${dset}; dst=${dumpdir}/raw/${dset}
        _nj=$(min "${nj}" "$(wc -l < "${src}/utt2spk")")
        utils/split_data_dir.sh "${src}" "${_nj}" > /dev/null
        mkdir -p "${dst}/logdir"
        ${train_cmd} JOB=1:"${_nj}" "${dst}/logdir/format_audio.JOB.log" \
            ${python} -m espnet_ext.bin.format_audio --in_dir "${src}/split${_nj}/JOB" \
                --out_dir "${dst}/logdir/output.JOB" --audio_dir "${dst}/data" \
                --fs "${fs}" --min_dur "${min_dur}" --max_dur "${max_dur}"
        for f in wav.scp utt2dur utt2num_samples excluded; do
            for i in $(seq "${_nj}"); do cat "${dst}/logdir/output.${i}/${f}"; done | LC_ALL=C sort > "${dst}/${f}"
        done
        [ -s "${dst}/wav.scp" ] || { log "${dset}: every utterance is outside ${min_dur}-${max_dur} s (see ${dst}/excluded)"; exit 1; }
        for f in "${src}"/*; do
            name=$(basename "$f")
            case "$name" in wav.scp|segments|utt2channel|utt2dur|utt2num_samples|split*) ;;
                *) [ -f "$f" ] && cp "$f" "${dst}/${name}" ;; esac
        done
        echo "${fs}" > "${dst}/audio_format"
        if [ -s "${dst}/excluded" ]; then
            log "${dset}: $(wc -l < "${dst}/excluded") utterance(s) excluded by duration, listed in ${dst}/excluded"
        fi
        mv "${dst}/excluded" "${dst}/logdir/excluded"
        utils/fix_data_dir.sh "${dst}"
        utils/validate_data_dir.sh "${dst}"
    done
    if [ "${pretrain_set}" != "${train_set}" ]; then  # the pre-training's set: the train set and --pretrain_sets
        _dirs=""; for dset in ${train_set} ${pretrain_sets}; do _dirs+=" ${data_feats}/${dset}"; done
        # shellcheck disable=SC2086
        utils/combine_data.sh "${data_feats}/${pretrain_set}" ${_dirs}
    fi
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    if [ "${feats_type}" = extracted ]; then
        _stage=3; require palign_config
        log "Stage 3: the frozen frontend's features of ${data_sets} -> ${feats_dir}"
        for dset in ${data_sets}; do
            need "${data_feats}/${dset}/wav.scp"
            ${python} -m espnet_ext.bin.dump_feats --train_config "${palign_config}" \
                --data_dir "${data_feats}/${dset}" --out_dir "${feats_dir}/${dset}"
        done
        if [ "${pretrain_set}" != "${train_set}" ]; then  # its parts' features, not computed twice
            mkdir -p "${feats_dir}/${pretrain_set}"
            for f in feats.scp feats_shape; do
                for dset in ${train_set} ${pretrain_sets}; do cat "${feats_dir}/${dset}/${f}"; done \
                    | LC_ALL=C sort > "${feats_dir}/${pretrain_set}/${f}"
            done
            cp "${feats_dir}/${train_set}/frontend.yaml" "${feats_dir}/${pretrain_set}/"
        fi
    else
        log "Stage 3: nothing to dump (--feats_type raw): the frontend runs inside the model on ${data_feats} audio"
    fi
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    _stage=4; require teacher_config
    log "Stage 4: teacher replies (${teacher_tasks}) from the frozen LLM -> ${teacher_dir}"
    _dirs=""; for dset in ${all_sets}; do _dirs+=" ${data_feats}/${dset}"; need "${data_feats}/${dset}/text"; done
    ${python} -m espnet_ext.bin.check_llm "${teacher_config}" || exit 2  # before the jobs wait on a hub
    if [[ " ${teacher_tasks} " == *" style "* ]]; then  # style prompts spell out measured prosody
        for d in ${_dirs}; do
            ${python} -m espnet_ext.bin.measure_prosody --data_dir "${d}" --out_dir "${teacher_dir}/$(basename "${d}")"
        done
    fi
    # shellcheck disable=SC2086
    ${python} -m espnet_ext.bin.teacher_generate prepare --config "${teacher_config}" --out "${teacher_dir}" \
        --tasks ${teacher_tasks} --data_dirs ${_dirs} --targets_dir "${teacher_dir}"
    _n=$(min "${teacher_nj}" "$(wc -l < "${teacher_dir}/prompts.jsonl")")
    # one GPU per job on the local backend (launch.sh deals the visible GPUs out), one each on Slurm
    ${decode_cmd} --gpu "$([ "${_device}" = cuda ] && echo 1 || echo 0)" --num_threads "$(threads_per_job "${_n}")" \
        JOB=1:"${_n}" "${teacher_dir}/log/generate.JOB.log" ${teacher_python} -m espnet_ext.bin.teacher_generate generate \
        --config "${teacher_config}" --out "${teacher_dir}" --shard JOB --num_shards "${_n}" --device "${_device}"
    # shellcheck disable=SC2086
    # The targets go to ${teacher_dir}/<set>/ with meta.yaml: dump/raw stays as stage 2 wrote it.
    ${python} -m espnet_ext.bin.teacher_generate merge --config "${teacher_config}" --out "${teacher_dir}" \
        --tasks ${teacher_tasks} --data_dirs ${_dirs} --targets_dir "${teacher_dir}"
fi

# Data options shared by stages 5 and 6: speech, one target file per task of the training config, and
# with the KL loss each task's teacher prompts. The response task reads --palign_target; for the
# semantic-only baseline (response_neutral) every teacher task reads its own _neutral replies, so that no
# target carries the emotion (copied targets such as asr, having no teacher prompt, stay as they are).
set_data_opts() {  # called when stage 4's files exist; $1=encoder_only: no LLM targets (pre-training)
    _data_opts=()
    local _tasks _loss _suffix=${palign_target#response} _phase _dset _t _file _aux _ctc _transcript=false
    _tasks=$(conf_get "${palign_config}" tasks); _tasks=${_tasks:-response}
    [ "${1:-}" = encoder_only ] && _tasks=""
    _loss=$(conf_get "${palign_config}" loss)
    _aux=$(conf_get "${palign_config}" aux_conf.weight)
    [ "${palign_target}" = response ] || _aux=0  # the semantic-only baseline has no emotion classifier
    _ctc=$(conf_get "${palign_config}" ctc_conf.weight)
    _train=${train_set}
    if [ "${1:-}" = encoder_only ]; then  # the pre-training: its own set, and its own CTC weight if it has one
        _train=${pretrain_set}
        _t=$(conf_get "${palign_config}" pretrain_conf.ctc_conf.weight); _ctc=${_t:-${_ctc}}
    fi
    if nonzero "${_ctc}" || student_reads_text; then _transcript=true; fi  # CTC's target, or words in the prompt
    for _phase in train valid; do
        if [ "${_phase}" = train ]; then _dset=${_train}; else _dset=${valid_set}; fi
        if [ "${feats_type}" = extracted ]; then
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${feats_dir}/${_dset}/feats.scp,speech,kaldi_ark")
        else
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${data_feats}/${_dset}/wav.scp,speech,sound")
        fi
        if [ "${speaker_norm}" = True ]; then
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${spk_stats}/${_dset}/spk_mean.scp,spk_mean,npy")
        fi
        if nonzero "${_aux}"; then
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${data_feats}/${_dset}/utt2emo,emotion_label,text")
        fi
        if "${_transcript}"; then
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${data_feats}/${_dset}/text,transcript,text")
        fi
        for _t in ${_tasks}; do
            _file=${_t}
            if [ -n "${_suffix}" ] && [ -e "${teacher_dir}/${_dset}/${_t}_prompt" ]; then
                _file=${_t}${_suffix}
                [ -e "${teacher_dir}/${_dset}/${_file}" ] || {
                    log "${teacher_dir}/${_dset}/${_file} is missing: add ${_file} to --teacher_tasks (stage 4)"; exit 2; }
            fi
            _data_opts+=(--${_phase}_data_path_and_name_and_type "${teacher_dir}/${_dset}/${_file},${_t},text")
            if [ "${_loss}" = kl ]; then
                _data_opts+=(--${_phase}_data_path_and_name_and_type "${teacher_dir}/${_dset}/${_file}_prompt,${_t}_prompt,text")
            fi
        done
    done
    local i _inputs=(); for ((i = 1; i < ${#_data_opts[@]}; i += 2)); do _inputs+=("${_data_opts[i]%%,*}"); done
    need "${_inputs[@]}"
}
# Does a student prompt of the training config give the LLM the transcript ({text}) beside the speech?
student_reads_text() { ${python} -c "
import sys
from espnet_ext import yaml_file
from espnet_ext.palign.prompts import load_prompt_conf, reads_text, student_prompts
c = yaml_file.load(sys.argv[1]) or {}
turns = student_prompts(load_prompt_conf(c.get('prompt_conf')), c.get('tasks') or ['response'], c.get('student_prompts'))
sys.exit(0 if any(map(reads_text, turns.values())) else 1)" "${palign_config}"; }
nonzero() { [ -n "$1" ] && [ "$(${python} -c "print(float('$1') != 0)")" = True ]; }

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    _stage=5; require palign_config
    for dset in ${all_sets}; do need "${data_feats}/${dset}/wav.scp"; done
    ${python} -m espnet_ext.bin.check_llm "${palign_config}" || exit 2
    if [ "${speaker_norm}" = True ]; then
        log "Stage 5: each speaker's mean features (speaker_norm) -> ${spk_stats}"
        _dirs=""; for dset in $(echo "${all_sets} ${pretrain_set}" | tr ' ' '\n' | sort -u); do
            _dirs+=" ${data_feats}/${dset}"; done
        # shellcheck disable=SC2086
        _opts=(); [ "${feats_type}" = extracted ] && _opts+=(--feats_dir "${feats_dir}")
        ${python} -m espnet_ext.bin.speaker_stats --train_config "${palign_config}" --data_dirs ${_dirs} \
            --out "${spk_stats}" "${_opts[@]}"
    fi
    set_data_opts
    log "Stage 5: collect feature statistics and shapes -> ${stats_dir}"
    _logdir=${stats_dir}/logdir; mkdir -p "${_logdir}"
    _n=$(min "${nj}" "$(wc -l < "${data_feats}/${valid_set}/wav.scp")")
    for _dset in "${train_set}" "${valid_set}"; do  # key lists, dealt round-robin to the jobs
        awk -v n="${_n}" -v p="${_logdir}/${_dset}.keys" '{ print > (p "." ((NR - 1) % n + 1)) }' \
            "${data_feats}/${_dset}/wav.scp"
    done
    # shellcheck disable=SC2086
    ${train_cmd} --num_threads 1 JOB=1:"${_n}" "${_logdir}/stats.JOB.log" \
        ${python} -m espnet_ext.bin.palign_train --collect_stats true --config "${palign_config}" \
        "${_data_opts[@]}" --train_shape_file "${_logdir}/${train_set}.keys.JOB" \
        --valid_shape_file "${_logdir}/${valid_set}.keys.JOB" \
        --output_dir "${_logdir}/stats.JOB" ${palign_args}
    _dirs=""; for i in $(seq "${_n}"); do _dirs+=" --input_dir ${_logdir}/stats.${i}"; done
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.aggregate_stats_dirs ${_dirs} --output_dir "${stats_dir}"
    # Training batches are drawn in this key order (batch_type: unsorted): a seeded shuffle, so that no
    # batch holds one speaker or one emotion (sorted batches group the long, sad utterances together).
    shuffle() { ${python} -c "import random,sys; l=open(sys.argv[1]).readlines(); random.Random(0).shuffle(l); sys.stdout.writelines(l)" "$1"; }
    shuffle "${stats_dir}/train/speech_shape" > "${stats_dir}/train/speech_shape.shuffled"
    # the pre-training's keys (with --pretrain_sets): the train set and the extra sets, shuffled as well
    [ "${pretrain_set}" = "${train_set}" ] || shuffle "${data_feats}/${pretrain_set}/utt2num_samples" \
        > "${stats_dir}/train/pretrain_shape.shuffled"
fi

# Stages 6-8 as functions of palign_target / palign_exp: stage 10 runs them for the semantic-only model.
train_model() {  # $1: the stage this runs as (its log lines and time go there); more: options of the alignment
    _stage=$1; shift; require palign_config
    need "${data_feats}/${train_set}/wav.scp" "${data_feats}/${valid_set}/wav.scp" "${teacher_dir}/meta.yaml" \
        "${stats_dir}/train/speech_shape.shuffled" "${stats_dir}/valid/speech_shape"
    ${python} -m espnet_ext.bin.check_llm "${palign_config}" || exit 2
    mkdir -p "${palign_exp}"
    _opts=()
    if grep -q '^normalize: *global_mvn' "${palign_config}"; then
        _opts+=(--normalize_conf "stats_file=${stats_dir}/train/feats_stats.npz")
    fi
    # The semantic-only baseline learns no emotion at all: no emotion in its targets, no emotion classifier.
    [ "${palign_target}" = response ] || _opts+=(--aux_conf weight=0)
    # Several GPUs: one process per GPU (DDP), each with its own frozen LLM (DataParallel would not copy it)
    [ "${ngpu}" -gt 1 ] && _opts+=(--multiprocessing_distributed true)
    _t=$(conf_args "${palign_config}" pretrain_conf); _pretrain=()
    [ -z "${_t}" ] || mapfile -t _pretrain <<< "${_t}"
    # Semantic pre-alignment (prealign_conf: {share: S}): the first P = S x max_epoch epochs (rounded) are the
    # semantic-only model's (the _neutral targets, no emotion classifier, after its own pre-training), trained
    # that far here and to the end by stage 10; the emotion alignment starts from its epoch P for the rest.
    _p=$(conf_get "${palign_config}" prealign_conf.share); _init=""
    if [ -n "${_p}" ] && [ "${palign_target}" = response ]; then
        _m=$(conf_get "${palign_config}" max_epoch)
        _p=$(${python} -c "import sys; m = int(sys.argv[1]); p = round(m * float(sys.argv[2]))
print(p if 0 < p < m else '')" "${_m}" "${_p}")
        [ -n "${_p}" ] || { log "prealign_conf.share leaves one phase no epoch of max_epoch ${_m}"; exit 2; }
        if [ ! -s "${palign_exp}/prealign.yaml" ]; then
            (use_target response_neutral; train_model "${_stage}" --max_epoch "${_p}")
            _t=$(use_target response_neutral; echo "${palign_exp}")
            mkdir -p "${palign_exp}"; cp "${_t}/${_p}epoch.pth" "${palign_exp}/prealign.pth"
            printf 'model_dir: %s\nepoch: %s\n' "${_t}" "${_p}" > "${palign_exp}/prealign.yaml"
        fi
        _pretrain=()  # the semantic model's pre-training is this model's too
        _init=${palign_exp}/prealign.pth; _opts+=(--max_epoch $((_m - _p)))
    fi
    if [ ${#_pretrain[@]} -gt 0 ]; then
        # Encoder pre-training without the LLM (CTC on the transcript, the emotion classifier): seconds
        # per step instead of the LLM's; the alignment below starts from it.
        set_data_opts encoder_only
        _shape=speech_shape.shuffled; [ "${pretrain_set}" = "${train_set}" ] || _shape=pretrain_shape.shuffled
        log "Stage ${_stage}: encoder pre-training (no LLM) -> ${palign_exp}/pretrain (log: ${palign_exp}/pretrain/train.log)"
        mkdir -p "${palign_exp}/pretrain"
        # shellcheck disable=SC2086
        ${cuda_cmd} --gpu "${ngpu}" --num_threads "${num_threads}" "${palign_exp}/pretrain/train.log" \
            ${python} -m espnet_ext.bin.palign_train --config "${palign_config}" --use_preprocessor true \
            "${_data_opts[@]}" "${_opts[@]}" --encoder_only true "${_pretrain[@]}" --resume true --ngpu "${ngpu}" \
            --output_dir "${palign_exp}/pretrain" --train_shape_file "${stats_dir}/train/${_shape}" \
            --valid_shape_file "${stats_dir}/valid/speech_shape" ${palign_args}
        _init=${palign_exp}/pretrain/valid.loss.best.pth
    fi
    if [ -n "${_init}" ]; then  # the alignment starts from it, less the heads it does not train (path:src:dst:excludes)
        _t=""; nonzero "$(conf_get "${palign_config}" ctc_conf.weight)" || _t=ctc.
        _opts+=(--init_param "${_init}${_t:+:::${_t}}")
    fi
    set_data_opts
    log "Stage ${_stage}: training -> ${palign_exp} (log: ${palign_exp}/train.log)"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" --num_threads "${num_threads}" "${palign_exp}/train.log" \
        ${python} -m espnet_ext.bin.palign_train --config "${palign_config}" --use_preprocessor true \
        "${_data_opts[@]}" "${_opts[@]}" --teacher_meta "${teacher_dir}/meta.yaml" --resume true --ngpu "${ngpu}" \
        --output_dir "${palign_exp}" --train_shape_file "${stats_dir}/train/speech_shape.shuffled" --train_shape_file "${stats_dir}/train/response_shape" \
        --valid_shape_file "${stats_dir}/valid/speech_shape" --valid_shape_file "${stats_dir}/valid/response_shape" \
        ${palign_args} "$@"
    grep -E "[0-9]+epoch results" "${palign_exp}/train.log" | sed 's/^.*INFO: //' >&2 || true
}

decode_model() {  # $1: the stage this runs as (its log lines and time go there)
    _stage=$1; need "${palign_exp}/config.yaml"
    log "Stage $1: decoding ${test_sets} with ${palign_exp} -> ${palign_exp}/${inference_tag}"
    _opts=(); [ -n "${inference_config}" ] && _opts+=(--config "${inference_config}")
    [ -n "${inference_model}" ] && _opts+=(--model_file "${palign_exp}/${inference_model}")
    for dset in ${test_sets}; do
        _dir=${palign_exp}/${inference_tag}/${dset}; mkdir -p "${_dir}/logdir"
        _n=$(min "${inference_nj}" "$(wc -l < "${data_feats}/${dset}/wav.scp")")
        utils/split_data_dir.sh "${data_feats}/${dset}" "${_n}" --out "${_dir}/logdir/split${_n}" > /dev/null
        _spk=() _files="text emotion asr"
        [ -n "${inference_transcripts}" ] && _spk+=(--transcripts "${inference_transcripts}/${dset}/text")
        if [ "${speaker_norm}" = True ]; then
            # With the speaker's statistics, and the emotion question again for each file alone, without them:
            # what the demo and palign_inference --wav hear (stage 8 scores it as "file alone").
            _spk=(--spk_mean_scp "${spk_stats}/${dset}/spk_mean.scp"
                  --emotion_alone_output "${_dir}/logdir/emotion_alone.JOB")
            _files+=" emotion_alone"
        fi
        # The reply, the answers to "What emotion do you hear?" and "Write down exactly what I said." (the
        # prompt config's student 'emotion' and 'asr' turns) from the same encoding, with the reply's token budget: the text baselines' answers get the
        # teacher's, and a cut answer ("The user's voice is quite melanch") would be scored wrong.
        # shellcheck disable=SC2086
        ${decode_cmd} --gpu "$("${gpu_inference}" && echo 1 || echo 0)" \
            --num_threads "$(threads_per_job "${_n}")" JOB=1:"${_n}" "${_dir}/logdir/decode.JOB.log" \
            ${python} -m espnet_ext.bin.palign_inference --model_dir "${palign_exp}" "${_opts[@]}" \
            --data_dir "${_dir}/logdir/split${_n}/JOB" --output "${_dir}/logdir/text.JOB" \
            --emotion_output "${_dir}/logdir/emotion.JOB" --asr_output "${_dir}/logdir/asr.JOB" "${_spk[@]}" \
            --device "${_device}" ${inference_args}
        for f in ${_files}; do
            for i in $(seq "${_n}"); do cat "${_dir}/logdir/${f}.${i}"; done | LC_ALL=C sort > "${_dir}/${f}"
        done
        log "${dset}: $(wc -l < "${_dir}/text") replies in ${_dir}/text, emotion answers in ${_dir}/emotion"
    done
}

# score_system HYP_DIR DSET KIND [options]: LLM judge (if configured), then every metric -> scores.json, and
# system.yaml declaring the system (KIND: paraalign, semantic, topline, text_oracle, ...; stage 12 reads it)
# The judge scores only after passing its calibration on the valid set (teacher above text-only replies).
judge_calibration=${expdir}/judge/calibration.json
judge_passed() {
    [ -n "${judge_config}" ] || return 1
    if [ ! -s "${judge_calibration}" ]; then
        ${python} -m espnet_ext.bin.judge --config "${judge_config}" --ref_dir "${data_feats}/${valid_set}" \
            --targets_dir "${teacher_dir}/${valid_set}" --calibrate "${judge_calibration}" --device "${_device}"
    fi
    ${python} -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))['passed'] else 1)" "${judge_calibration}"
}
# The metrics are queued and score_queued runs them in one process (the similarity model loads once).
score_jobs=$(mktemp); trap 'rm -f "${score_jobs}"' EXIT
score_system() {
    local hyp=$1 dset=$2 kind=$3; shift 3
    if judge_passed; then
        ${python} -m espnet_ext.bin.judge --config "${judge_config}" --ref_dir "${data_feats}/${dset}" \
            --hyp "${hyp}/text" --output "${hyp}/judge" --device "${_device}"
    fi
    printf '%q ' --ref_dir "${data_feats}/${dset}" --targets_dir "${teacher_dir}/${dset}" --hyp_dir "${hyp}" \
        --output "${hyp}/scores.json" --system "${kind}" --teacher_dir "${teacher_dir}" --prompt_conf "$(conf_get "${teacher_config}" prompt_conf)" \
        --bertscore_model "${bertscore_model}" "$@" >> "${score_jobs}"
    echo >> "${score_jobs}"
}
score_queued() {
    [ -s "${score_jobs}" ] || return 0
    ${python} -m espnet_ext.bin.score --jobs "${score_jobs}"
    : > "${score_jobs}"
}


score_model() {  # $1: the stage this runs as (its log lines and time go there)
    _stage=$1; require teacher_config
    log "Stage $1: scoring ${palign_exp}/${inference_tag}"
    _probe=${palign_exp}/${inference_tag}/probe
    _pool=(--data_dir); _out=(--output); _max=(--max_utts); _spk=()
    for dset in ${train_set} ${test_sets}; do  # one process: the model loads once
        _pool+=("${data_feats}/${dset}"); _out+=("${_probe}/${dset}.npz")
        if [ "${dset}" = "${train_set}" ]; then _max+=("${probe_max_utts}"); else _max+=(0); fi
        [ "${speaker_norm}" = True ] && _spk+=("${spk_stats}/${dset}/spk_mean.scp")
    done
    if [ ${#_spk[@]} -gt 0 ]; then _spk=(--spk_mean_scp "${_spk[@]}"); fi
    ${python} -m espnet_ext.bin.pooled_tokens --model_dir "${palign_exp}" "${_pool[@]}" "${_out[@]}" "${_max[@]}" \
        --device "${_device}" "${_spk[@]}"
    for dset in ${test_sets}; do
        score_system "${palign_exp}/${inference_tag}/${dset}" "${dset}" \
            "$([ "${palign_target}" = response ] && echo paraalign || echo semantic)" --model_dir "${palign_exp}" \
            --probe_train "${_probe}/${train_set}.npz" --probe_test "${_probe}/${dset}.npz"
    done
    score_queued
}

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then train_model 6; fi
if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then decode_model 7; fi
if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then score_model 8; fi

_bdir=${expdir}/baselines
_text_baselines=$(echo "${baselines}" | tr ' ' '\n' | grep -E '^(topline|text_oracle|text_asr|emotion_only|reworded)$' | xargs || true)
if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ] && [ -n "${_text_baselines}" ]; then
    _stage=9; require teacher_config
    log "Stage 9: text baselines (${_text_baselines}) -> ${_bdir}"
    mkdir -p "${_bdir}/cache"
    # Replies to the same prompts were written in stage 4: start the cache from them.
    [ -s "${_bdir}/cache/replies.1.jsonl" ] || cat "${teacher_dir}"/replies.*.jsonl > "${_bdir}/cache/replies.1.jsonl"
    for dset in ${test_sets}; do
        for sys in ${baselines}; do
            _opts=()
            case "${sys}" in
                emotion_only)  # what hearing alone buys: no LLM, no words
                    ${python} -m espnet_ext.bin.emotion_only_system --ref_dir "${data_feats}/${dset}" --train_dir "${data_feats}/${train_set}" \
                        --train_replies "${teacher_dir}/${train_set}/response" --out_dir "${_bdir}/${sys}/${dset}"
                    score_system "${_bdir}/${sys}/${dset}" "${dset}" "${sys}"; continue ;;
                topline) _opts+=(--with_emotion true) ;;
                # the pair metric's ceiling for a system that hears words and emotion right but is not the teacher
                reworded) _opts+=(--with_emotion true --description "${reworded_description}") ;;
                text_oracle) _opts+=(--with_emotion false) ;;
                text_asr)
                    ${python} -m espnet_ext.bin.asr_transcribe --data_dir "${data_feats}/${dset}" \
                        --output "${_bdir}/asr/${dset}/text" --device "${_device}" || {
                        log "text_asr: no ASR model could run (faster-whisper); skipped"; continue; }
                    _opts+=(--with_emotion false --transcripts "${_bdir}/asr/${dset}/text") ;;
                *) continue ;;
            esac
            ${python} -m espnet_ext.bin.text_system --ref_dir "${data_feats}/${dset}" --out_dir "${_bdir}/${sys}/${dset}" \
                --config "${teacher_config}" --cache "${_bdir}/cache" --known_replies "${teacher_dir}" --device "${_device}" "${_opts[@]}"
            # the words a cascade reads: its WER is the ASR's
            [ "${sys}" = text_asr ] && cp "${_bdir}/asr/${dset}/text" "${_bdir}/${sys}/${dset}/asr"
            score_system "${_bdir}/${sys}/${dset}" "${dset}" "${sys}"
        done
    done
    score_queued
fi

if [ ${stage} -le 10 ] && [ ${stop_stage} -ge 10 ] && [[ " ${baselines} " == *" semantic "* ]]; then
    log "Stage 10: semantic-only alignment baseline (the encoder aligned to the _neutral replies)"
    use_target response_neutral
    train_model 10; decode_model 10; score_model 10
    use_target "${orig_target}"
fi

if [ ${stage} -le 11 ] && [ ${stop_stage} -ge 11 ] && [[ " ${baselines} " == *" cls "* ]]; then
    _stage=11; require cls_config teacher_config
    _cls=${_bdir}/cls
    log "Stage 11: cascades with an emotion classifier (ESPnet cls task; oracle and ASR transcripts) -> ${_cls}"
    mkdir -p "${_cls}"
    cut -d' ' -f2 "${data_feats}/${train_set}/utt2emo" "${data_feats}/${valid_set}/utt2emo" | LC_ALL=C sort -u > "${_cls}/labels"
    echo "<unk>" >> "${_cls}/labels"
    _data=()
    for _phase in train valid; do
        if [ "${_phase}" = train ]; then _dset=${train_set}; _shape=speech_shape.shuffled
        else _dset=${valid_set}; _shape=speech_shape; fi
        _data+=(--${_phase}_data_path_and_name_and_type "${data_feats}/${_dset}/wav.scp,speech,sound"
                --${_phase}_data_path_and_name_and_type "${data_feats}/${_dset}/utt2emo,label,text"
                --${_phase}_shape_file "${stats_dir}/${_phase}/${_shape}")
    done
    ${cuda_cmd} --gpu "${ngpu}" --num_threads "${num_threads}" "${_cls}/train.log" \
        ${python} -m espnet_ext.bin.cls_train --config "${cls_config}" --token_list "${_cls}/labels" \
        "${_data[@]}" --output_dir "${_cls}/model" --ngpu "${ngpu}" --resume true
    for dset in ${test_sets}; do
        ${python} -m espnet_ext.bin.cls_predict --model_dir "${_cls}/model" --data_dir "${data_feats}/${dset}" \
            --output "${_cls}/${dset}/utt2emo_pred" --device "${_device}"
        ${python} -m espnet_ext.bin.text_system --ref_dir "${data_feats}/${dset}" --out_dir "${_cls}/${dset}" \
            --config "${teacher_config}" --cache "${_bdir}/cache" --known_replies "${teacher_dir}" --device "${_device}" \
            --with_emotion true --labels "${_cls}/${dset}/utt2emo_pred"
        score_system "${_cls}/${dset}" "${dset}" cls
        [ -s "${_bdir}/asr/${dset}/text" ] || continue
        # The speech-only cascade: stage 9's Whisper transcript with the predicted emotion.
        ${python} -m espnet_ext.bin.text_system --ref_dir "${data_feats}/${dset}" --out_dir "${_bdir}/cls_asr/${dset}" \
            --config "${teacher_config}" --cache "${_bdir}/cache" --known_replies "${teacher_dir}" --device "${_device}" \
            --with_emotion true --labels "${_cls}/${dset}/utt2emo_pred" --transcripts "${_bdir}/asr/${dset}/text"
        cp "${_bdir}/asr/${dset}/text" "${_bdir}/cls_asr/${dset}/asr"
        score_system "${_bdir}/cls_asr/${dset}" "${dset}" cls_asr
    done
    score_queued
fi

if [ ${stage} -le 12 ] && [ ${stop_stage} -ge 12 ]; then
    log "Stage 12: ${results_md}"
    mkdir -p "$(dirname "${results_md}")"
    # shellcheck disable=SC2086
    ${python} -m espnet_ext.bin.make_results --expdir "${expdir}" --test_sets ${test_sets} --output "${results_md}" \
        --configs "${palign_config}" "${teacher_config}" ${inference_config:+"${inference_config}"} \
        ${cls_config:+"${cls_config}"} ${judge_config:+--judge_config "${judge_config}"} \
        --ablations_dir "${expdir}/ablations"  # a recipe's local/run_ablations.sh writes there
    # The recipe README's headline block follows the committed report (never a smoke report).
    if [ "${results_md}" = RESULTS.md ] && grep -q '<!-- results:begin -->' README.md 2>/dev/null; then
        # shellcheck disable=SC2086
        ${python} -m espnet_ext.bin.sync_readme --results RESULTS.md --readmes README.md --test_sets ${test_sets}
    fi
fi

log "Finished stages ${stage}-${stop_stage}."
