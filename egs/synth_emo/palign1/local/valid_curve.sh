#!/usr/bin/env bash
# The curve behind a training choice: each epoch checkpoint of an experiment dir decoded on the valid set
# (never a test set) and scored: WER by prompting, emotion by prompting (with the speaker's statistics and
# for a file alone), pair sensitivity, sentence match. One line per epoch -> EXP/valid_curve.tsv.
#   local/valid_curve.sh exp/palign_train_smollm2_whisper [--valid_set valid] [--teacher exp/teacher_smollm2]
#                        [--epochs "2 4 6"] (default: every epoch checkpoint)
# Epochs already in the table are skipped (rerunning resumes). Needs the training's *epoch.pth files
# (palign_args "--keep_nbest_models N" keeps them).
set -euo pipefail
[ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
exp=$1; shift
valid_set=valid
teacher=exp/teacher_smollm2
epochs=""
while [ $# -gt 0 ]; do
    case "$1" in
        --valid_set) valid_set=$2; shift 2 ;;
        --teacher) teacher=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        *) echo "valid_curve.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
. ./path.sh
data=dump/raw/${valid_set}
spk=exp/spk_stats/$(basename "${exp}" | sed 's/^palign_//')/${valid_set}/spk_mean.scp
out=${exp}/valid_curve.tsv
[ -s "${out}" ] || printf 'epoch\tsteps\twer\temotion_WA\temotion_alone_WA\tpair_sensitivity\tsentence_match\n' > "${out}"
steps_per_epoch=$(python -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); print(c.get('num_iters_per_epoch') or 0)" "${exp}/config.yaml")
for model in $(ls "${exp}"/*epoch.pth | sort -V); do
    epoch=$(basename "${model}" epoch.pth)
    cut -f1 "${out}" | grep -qx "${epoch}" && continue
    [ -z "${epochs}" ] || [[ " ${epochs} " == *" ${epoch} "* ]] || continue
    dir=${exp}/valid_curve/${epoch}; mkdir -p "${dir}"
    _spk=(); [ -s "${spk}" ] && _spk=(--spk_mean_scp "${spk}" --emotion_alone_output "${dir}/emotion_alone")
    python -m espnet_ext.bin.palign_inference --model_dir "${exp}" --model_file "${model}" --config conf/decode.yaml \
        --data_dir "${data}" --output "${dir}/text" --emotion_output "${dir}/emotion" --asr_output "${dir}/asr" \
        "${_spk[@]}" 2> "${dir}/decode.log"
    python -m espnet_ext.bin.score --ref_dir "${data}" --targets_dir "${teacher}/${valid_set}" --hyp_dir "${dir}" \
        --output "${dir}/scores.json" --semantic false 2>> "${dir}/decode.log"
    python - "${dir}/scores.json" "${epoch}" "${steps_per_epoch}" >> "${out}" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
keys = ("wer", "emotion_WA", "emotion_alone_WA", "pair_sensitivity", "sentence_match")
print("\t".join([sys.argv[2], str(int(sys.argv[2]) * int(sys.argv[3]))] + [f"{s[k]:.3f}" if k in s else "-" for k in keys]))
PY
    tail -1 "${out}"
done
column -t "${out}"
