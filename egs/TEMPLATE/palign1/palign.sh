#!/usr/bin/env bash
# ParaAlign recipe stages, shared by every egs/<corpus>/palign1/run.sh (ESPnet's asr.sh, made short).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (palign.sh:${BASH_LINENO[0]}) $*" >&2; }
min() { echo $(( $1 < $2 ? $1 : $2 )); }

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
fs=16000               # sample rate after stage 2
min_dur=0.1            # stage 2 drops shorter utterances (seconds)
max_dur=30.0           # stage 2 drops longer utterances (seconds)

help_message=$(cat << EOF
Usage: $0 --train_set <name> --valid_set <name> --test_sets "<name> ..." [options]
Stages: 1 data prep (local/data.sh) . 2 audio format (${fs} Hz mono, duration filter)
Options (default in brackets):
  --stage ${stage}  --stop_stage ${stop_stage}  --nj ${nj}  --inference_nj ${inference_nj}
  --ngpu ${ngpu}  --gpu_inference ${gpu_inference}  --dumpdir ${dumpdir}  --expdir ${expdir}
  --local_data_opts "..."   options for local/data.sh
  --fs ${fs}  --min_dur ${min_dur}  --max_dur ${max_dur}
EOF
)

log "$0 $*"
. utils/parse_options.sh
[ $# -eq 0 ] || { log "unexpected arguments: $*"; exit 2; }
. ./path.sh
. ./cmd.sh
[ -n "$train_set" ] || { log "--train_set is required"; exit 2; }
[ -n "$valid_set" ] || { log "--valid_set is required"; exit 2; }
all_sets="${train_set} ${valid_set} ${test_sets}"

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "Stage 1: data preparation (local/data.sh ${local_data_opts})"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for dset in ${all_sets}; do
        utils/validate_data_dir.sh "data/${dset}"
    done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "Stage 2: format audio to ${fs} Hz mono WAV in ${dumpdir}/raw, keep ${min_dur}-${max_dur} s"
    for dset in ${all_sets}; do
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
fi

log "Finished stages ${stage}-${stop_stage}."
