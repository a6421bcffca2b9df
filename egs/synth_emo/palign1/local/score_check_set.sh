#!/usr/bin/env bash
# A trained model asked about a check set from another synthesiser (local/make_check_set.py): emotion by
# prompting with that set's own speaker means and for a file alone, and the words by prompting (WER).
# The set has no teacher replies, so the reply metrics are not computed. -> OUT/scores.json
#   local/score_check_set.sh exp/palign_train_smollm2 data/flite_check [--out DIR] [--model_file FILE]
#                            (default DIR: EXP/check/<set name>, EXP/check/<set name>.<FILE's name> with
#                            --model_file, e.g. EXP/12epoch.pth to follow a check set along the training)
# A decode already written is kept (palign_inference resumes); scoring is redone.
set -euo pipefail
[ $# -ge 2 ] && [ "$1" != -h ] && [ "$1" != --help ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
exp=$1; data=$2; shift 2
out="" model=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --model_file) model=(--model_file "$2"); shift 2 ;;
        *) echo "score_check_set.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
# another model's decode must not be resumed from: each model file gets its own dir
[ -n "${out}" ] || out=${exp}/check/$(basename "${data}")${model[1]:+.$(basename "${model[1]}" .pth)}
. ./path.sh
[ -s "${data}/wav.scp" ] || { echo "score_check_set.sh: ${data}/wav.scp does not exist (local/make_check_set.py)" >&2; exit 1; }
mkdir -p "${out}"
log() { echo "$(date +%Y-%m-%dT%H:%M:%S) (score_check_set.sh) $*"; }
log "speaker means of ${data} -> ${out}/spk_stats (log: ${out}/decode.log)"
python -m espnet_ext.bin.speaker_stats --train_config "${exp}/config.yaml" --data_dirs "${data}" \
    --out "${out}/spk_stats" 2> "${out}/decode.log"
log "decoding ${data} with ${exp}"
python -m espnet_ext.bin.palign_inference --model_dir "${exp}" "${model[@]}" --config conf/decode.yaml --data_dir "${data}" \
    --spk_mean_scp "${out}/spk_stats/$(basename "${data}")/spk_mean.scp" --output "${out}/text" \
    --emotion_output "${out}/emotion" --emotion_alone_output "${out}/emotion_alone" --asr_output "${out}/asr" \
    2>> "${out}/decode.log"
python -m espnet_ext.bin.score --ref_dir "${data}" --hyp_dir "${out}" --output "${out}/scores.json" \
    --replies false 2>> "${out}/decode.log"
python - "${out}/scores.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for k in ("emotion_WA", "emotion_alone_WA", "wer"):
    if k in s:
        lo, hi = s.get(f"{k}_ci", [float("nan")] * 2)
        print(f"{k}: {s[k]:.3f} [{lo:.2f}, {hi:.2f}]")
print(f"({s['num_utts']} utterances; {sys.argv[1]})")
PY
