#!/usr/bin/env bash
# Kaldi-style data-dir tools; the name it is called by picks the action:
#   validate_data_dir.sh DIR [--no-audio-check] [--no-emo]
#   fix_data_dir.sh DIR
#   subset_data_dir.sh SRC DST (--utt-list F | --first N | --last N | --spk-list F)
#   split_data_dir.sh DIR N [--per-spk] [--out DIR]
#   combine_data.sh DST SRC1 SRC2 ...
#   relabel_data_dir.sh DIR --map FILE.yaml [--section NAME] [--drop-unmapped]
# All are python -m espnet_ext.bin.data_dir <action>; see its --help. Kaldi's flags are kept here and
# spelt in the program's one style (--no-audio-check -> --audio_check false, --utt-list -> --utt_list).
set -euo pipefail
args=()
for a in "$@"; do
    case "$a" in
        --no-audio-check) args+=(--audio_check false) ;;
        --no-emo) args+=(--require_emotion false) ;;
        --per-spk) args+=(--per_spk true) ;;
        --drop-unmapped) args+=(--drop_unmapped true) ;;
        --utt-list) args+=(--utt_list) ;;
        --spk-list) args+=(--spk_list) ;;
        *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
case "$(basename "$0")" in
    validate_data_dir.sh) action=validate ;;
    fix_data_dir.sh) action=fix ;;
    subset_data_dir.sh) action=subset ;;
    split_data_dir.sh) action=split ;;
    combine_data.sh) action=combine ;;
    relabel_data_dir.sh) action=relabel ;;
    *) exec python -m espnet_ext.bin.data_dir "$@" ;;
esac
exec python -m espnet_ext.bin.data_dir "$action" "$@"
