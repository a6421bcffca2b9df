#!/usr/bin/env bash
# Stage 1 of Expresso: data/{train,valid,test} from the official splits, style labels.
set -euo pipefail
splits_dir=""               # default: $EXPRESSO/splits (or the published expresso_splits/)
conversational=false        # also the improvised dialogues (one channel per speaker; needs ASR transcripts)
missing_transcript=drop     # drop | asr: longform segments and dialogues have no transcript in the release
help_message="Usage: $0 [--splits_dir DIR] [--conversational true|false] [--missing_transcript drop|asr]"
. utils/parse_options.sh
. ./db.sh
require_db EXPRESSO
opts=()
[ -n "${splits_dir}" ] && opts+=(--splits_dir "${splits_dir}")
python -m espnet_ext.bin.prepare_corpus expresso --root "${EXPRESSO}" --out data \
    --conversational "${conversational}" --missing_transcript "${missing_transcript}" "${opts[@]}"
