#!/usr/bin/env bash
# Stage 1 of multi_emo: IEMOCAP + MSP-Podcast + Expresso in one label space (conf/shared_labels.yaml).
# Train and valid are the unions; each corpus keeps its own test set.
set -euo pipefail
iemocap_test_session=5
help_message="Usage: $0 [--iemocap_test_session N]"
. utils/parse_options.sh
. ./db.sh
for root in IEMOCAP MSP_PODCAST EXPRESSO; do require_db "${root}"; done
python -m espnet_ext.bin.prepare_corpus iemocap --root "${IEMOCAP}" --out data/iemocap \
    --test_session "${iemocap_test_session}"
python -m espnet_ext.bin.prepare_corpus msp_podcast --root "${MSP_PODCAST}" --out data/msp_podcast
python -m espnet_ext.bin.prepare_corpus expresso --root "${EXPRESSO}" --out data/expresso
for corpus in iemocap msp_podcast expresso; do
    for d in data/${corpus}/*/; do
        utils/relabel_data_dir.sh "${d%/}" --map conf/shared_labels.yaml --section "${corpus}"
    done
done
utils/combine_data.sh data/train data/iemocap/train data/msp_podcast/train data/expresso/train
utils/combine_data.sh data/valid data/iemocap/valid data/msp_podcast/valid data/expresso/valid
utils/combine_data.sh data/iemocap_test data/iemocap/test
utils/combine_data.sh data/msp_podcast_test1 data/msp_podcast/test1
utils/combine_data.sh data/expresso_test data/expresso/test
