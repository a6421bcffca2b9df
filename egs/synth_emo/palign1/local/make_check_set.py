#!/usr/bin/env python3
"""A check set from another synthesiser, for asking a trained model about speech from voices it never heard
(``palign_inference --data_dir``): CMU Flite voices (apt package ``flite``) or Festival's diphone voice
(apt packages ``festival festvox-kallpc16k``) speaking sentences in four emotions.

The emotions are portrayed as espnet_ext.synth.flite_festival does (synth_emo's factors of F0 mean and
spread, duration and level), so this checks a new synthesiser and new voices under the same portrayal
conventions, not new ways of expressing an emotion. Festival has one voice here; it speaks at three base
pitches (three "speakers"). A model trained with Flite voices (make_synth_emo --flite_train_voices) has heard
the Flite voices of this set: then only Festival's set is another synthesiser.

  python local/make_check_set.py --synth flite --text dump/raw/test_unseen/text --out data/flite_check
  python local/make_check_set.py --synth festival --text dump/raw/test_unseen/text --out data/festival_check
"""
import argparse
from pathlib import Path

from espnet_ext.audio import write_wav_atomic
from espnet_ext.datadir import read_kv, spk2utt_from, write_kv
from espnet_ext.synth.flite_festival import PORTRAYAL, VOICES, portray, require


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth", choices=sorted(VOICES), default="flite")
    p.add_argument("--text", type=Path, required=True, help="Kaldi text file; each distinct sentence is spoken")
    p.add_argument("--out", type=Path, required=True, help="data dir to write (wav.scp, text, utt2spk, utt2emo)")
    args = p.parse_args()
    require(args.synth)
    sentences = sorted({t.strip() for t in read_kv(args.text).values() if t.strip()})
    if not sentences:
        raise SystemExit(f"{args.text}: no sentences")
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    wav_scp, text, utt2spk, utt2emo = {}, {}, {}, {}
    voices = VOICES[args.synth]
    for spk, (voice, base) in voices.items():
        for emo in PORTRAYAL:
            for i, sentence in enumerate(sentences):
                utt = f"{spk}_{emo}_s{i:03d}"
                path = (args.out / "data" / f"{utt}.wav").resolve()
                write_wav_atomic(path, portray(args.synth, voice, sentence, emo, base), 16000)
                wav_scp[utt], text[utt], utt2spk[utt], utt2emo[utt] = str(path), sentence, spk, emo
    for name, items in (("wav.scp", wav_scp), ("text", text), ("utt2spk", utt2spk), ("utt2emo", utt2emo),
                        ("spk2utt", spk2utt_from(utt2spk))):
        write_kv(args.out / name, items)
    print(f"{args.out}: {len(wav_scp)} utterances, {len(voices)} {args.synth} voices x {len(PORTRAYAL)} emotions "
          f"x {len(sentences)} sentences")


if __name__ == "__main__":
    main()
