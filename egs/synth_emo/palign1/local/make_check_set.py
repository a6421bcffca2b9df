#!/usr/bin/env python3
"""A check set from another synthesiser, for asking a trained model about speech from voices it never heard
(``palign_inference --data_dir``): CMU Flite voices (apt package ``flite``) or Festival's diphone voice
(apt packages ``festival festvox-kallpc16k``) speaking sentences in four emotions.

Neither has emotions; each is portrayed by changing the voice's F0 mean and spread, duration and level by
the factors measured on synth_emo's train split (mean over 12 voices, relative to each voice's neutral).
So this checks a new synthesiser and new voices under the same portrayal conventions, not new ways of
expressing an emotion. Festival has one voice here; it speaks at three base pitches (three "speakers").

  python local/make_check_set.py --synth flite --text dump/raw/test_unseen/text --out data/flite_check
  python local/make_check_set.py --synth festival --text dump/raw/test_unseen/text --out data/festival_check
"""
import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from espnet_ext.audio import write_wav_atomic
from espnet_ext.datadir import read_kv, spk2utt_from, write_kv

# emotion: (F0 mean, F0 spread, duration, RMS level) relative to neutral, measured on synth_emo train
PORTRAYAL = {"neutral": (1.0, 1.0, 1.0, 1.0), "happy": (1.56, 1.92, 0.89, 1.66),
             "sad": (0.81, 0.61, 1.76, 0.54), "angry": (1.19, 1.61, 0.89, 2.01)}
# Flite voices whose F0 target can be set (rms ignores it), with a natural base F0 (Hz)
VOICES = {"flite": {"flite_slt": ("slt", 170.0), "flite_awb": ("awb", 110.0), "flite_kal16": ("kal16", 105.0)},
          "festival": {"fest_kal090": ("kal_diphone", 90.0), "fest_kal120": ("kal_diphone", 120.0),
                       "fest_kal150": ("kal_diphone", 150.0)}}
PROGRAMS = {"flite": ("flite", "apt-get install flite"),
            "festival": ("text2wave", "apt-get install festival festvox-kallpc16k")}
NEUTRAL_SPREAD = 0.12  # F0 standard deviation of the neutral portrayal, relative to its mean


def speak(synth: str, voice: str, text: str, f0: float, spread: float, stretch: float) -> np.ndarray:
    """16 kHz audio of ``text`` at F0 mean/spread (Hz) and duration factor ``stretch``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        if synth == "flite":
            cmd = ["flite", "-voice", voice, "--setf", f"int_f0_target_mean={f0:.1f}",
                   "--setf", f"int_f0_target_stddev={spread:.1f}", "--setf", f"duration_stretch={stretch:.3f}",
                   "-t", text, "-o", str(wav)]
        else:  # festival: its linear-regression intonation targets and duration stretch
            (Path(tmp) / "x.txt").write_text(text + "\n")
            cmd = ["text2wave", "-o", str(wav), "-eval", f"(voice_{voice})",
                   "-eval", f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {spread:.1f}) "
                            f"(model_f0_mean 170) (model_f0_std 34)))",
                   "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})", str(Path(tmp) / "x.txt")]
        subprocess.run(cmd, check=True, capture_output=True)
        x, fs = soundfile.read(wav, dtype="float32")
    if fs != 16000:
        raise SystemExit(f"{synth} voice {voice} wrote {fs} Hz audio; this set needs 16 kHz voices")
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synth", choices=sorted(VOICES), default="flite")
    p.add_argument("--text", type=Path, required=True, help="Kaldi text file; each distinct sentence is spoken")
    p.add_argument("--out", type=Path, required=True, help="data dir to write (wav.scp, text, utt2spk, utt2emo)")
    args = p.parse_args()
    program, install = PROGRAMS[args.synth]
    if shutil.which(program) is None:
        raise SystemExit(f"make_check_set.py: no '{program}' program on PATH (Debian/Ubuntu: {install})")
    sentences = sorted({t.strip() for t in read_kv(args.text).values() if t.strip()})
    if not sentences:
        raise SystemExit(f"{args.text}: no sentences")
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    wav_scp, text, utt2spk, utt2emo = {}, {}, {}, {}
    voices = VOICES[args.synth]
    for spk, (voice, base) in voices.items():
        for emo, (f0, spread, duration, level) in PORTRAYAL.items():
            for i, sentence in enumerate(sentences):
                utt = f"{spk}_{emo}_s{i:03d}"
                x = speak(args.synth, voice, sentence, base * f0, base * f0 * NEUTRAL_SPREAD * spread, duration)
                path = (args.out / "data" / f"{utt}.wav").resolve()
                write_wav_atomic(path, np.clip(x * level, -1.0, 1.0), 16000)
                wav_scp[utt], text[utt], utt2spk[utt], utt2emo[utt] = str(path), sentence, spk, emo
    for name, items in (("wav.scp", wav_scp), ("text", text), ("utt2spk", utt2spk), ("utt2emo", utt2emo),
                        ("spk2utt", spk2utt_from(utt2spk))):
        write_kv(args.out / name, items)
    print(f"{args.out}: {len(wav_scp)} utterances, {len(voices)} {args.synth} voices x {len(PORTRAYAL)} emotions "
          f"x {len(sentences)} sentences")


if __name__ == "__main__":
    main()
