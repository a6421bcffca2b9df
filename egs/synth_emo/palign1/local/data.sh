#!/usr/bin/env bash
# Stage 1 of synth_emo: synthesise the embedded corpus with espeak-ng into data/{train,valid,test,test_unseen}.
# Every option goes to espnet_ext.bin.make_synth_emo (see its --help): --seed, --train_voices,
# --max_train_sentences, ... e.g. run.sh --local_data_opts "--seed 1 --train_voices 4".
set -euo pipefail
exec python -m espnet_ext.bin.make_synth_emo --sentences local/sentences.txt \
    --data_dir data --wav_dir downloads/synth_emo "$@"
