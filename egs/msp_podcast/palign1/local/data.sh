#!/usr/bin/env bash
# Stage 1 of MSP-Podcast: data/{train,valid,test1,test2[,test3]} from Labels/labels_consensus.csv.
set -euo pipefail
classes="A H S N U F D C"    # EmoClass codes kept (O and X dropped by default)
missing_transcript=drop      # drop | asr (Whisper tiny.en, offline)
help_message="Usage: $0 [--classes A,H,S,N] [--missing_transcript drop|asr]
  (from run.sh: ./run.sh --local_data_opts \"--classes A,H,S,N\"; a quoted list with spaces does not survive)"
. utils/parse_options.sh
. ./db.sh
require_db MSP_PODCAST
# shellcheck disable=SC2086
python -m espnet_ext.bin.prepare_corpus msp_podcast --root "${MSP_PODCAST}" --out data \
    --classes ${classes} --missing_transcript "${missing_transcript}"
