#!/usr/bin/env bash
# Stage 1 of synth_emo: synthesise the embedded corpus with espeak-ng into data/{train,valid,test,test_unseen}.
set -euo pipefail
seed=777          # the whole corpus is a function of this seed
data_dir=data
wav_dir=downloads/synth_emo
extra=""          # more options for espnet_ext.bin.make_synth_emo, e.g. "--train_voices 4"
help_message="Usage: $0 [--seed N] [--data_dir DIR] [--wav_dir DIR] [--extra \"...\"]"
. utils/parse_options.sh
# shellcheck disable=SC2086
python -m espnet_ext.bin.make_synth_emo --sentences local/sentences.txt \
    --data_dir "$data_dir" --wav_dir "$wav_dir" --seed "$seed" ${extra}
