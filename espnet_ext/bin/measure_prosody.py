"""Measured prosody for the style task: per utterance, pitch (median F0), pace (words per second of
speech) and loudness (RMS dB), put into words relative to the same speaker's other utterances
(terciles: low/medium/high pitch, slow/moderate/fast pace, quiet/moderate/loud) -> utt2pitch, utt2pace,
utt2loudness. Relative to the speaker, so a deep voice is not "low pitch" in every utterance."""
import logging
import sys
from pathlib import Path
from typing import Dict

import numpy as np
from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv, write_kv

WORDS = {"pitch": ("low", "medium", "high"), "pace": ("slow", "moderate", "fast"),
         "loudness": ("quiet", "moderate", "loud")}


def measure(x: np.ndarray, fs: int, num_words: int) -> Dict[str, float]:
    import librosa

    hop = fs // 100
    rms = librosa.feature.rms(y=x, frame_length=4 * hop, hop_length=hop)[0]
    active = rms > 0.1 * max(rms.max(), 1e-8)
    f0 = librosa.yin(x, fmin=60, fmax=500, sr=fs, frame_length=4 * hop * 2, hop_length=hop)
    n = min(len(f0), len(active))
    voiced = f0[:n][active[:n]]
    idx = np.flatnonzero(active)
    speech_seconds = (idx[-1] - idx[0] + 1) * hop / fs if len(idx) else len(x) / fs
    return {"pitch": float(np.median(voiced)) if len(voiced) else 0.0,
            "pace": num_words / max(speech_seconds, 0.1),
            "loudness": float(20 * np.log10(np.sqrt(np.mean(rms[active] ** 2)) + 1e-8)) if active.any() else -100.0}


def in_words(values: Dict[str, float], utt2spk: Dict[str, str], kind: str) -> Dict[str, str]:
    """Tercile of each utterance's value among its speaker's utterances, as a word."""
    out = {}
    for spk in set(utt2spk.values()):
        utts = [u for u in values if utt2spk[u] == spk]
        lo, hi = np.quantile([values[u] for u in utts], [1 / 3, 2 / 3])
        for u in utts:
            out[u] = WORDS[kind][0 if values[u] < lo else 2 if values[u] > hi else 1]
    return out


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--out_dir", type=Path, default=None,
                   help="where utt2pitch, utt2pace, utt2loudness go (the recipe: stage 4's target dir); "
                        "default the data dir")
    p.add_argument("--fs", type=int, default=16000)
    args = cli.parse(p, argv)
    out = args.out_dir or args.data_dir
    out.mkdir(parents=True, exist_ok=True)
    if all((out / f"utt2{k}").exists() for k in WORDS):
        logging.info(f"{out}: prosody already measured")
        return 0
    wav_scp, text, utt2spk = (read_kv(args.data_dir / f) for f in ("wav.scp", "text", "utt2spk"))
    raw = {k: {} for k in WORDS}
    for utt in tqdm(wav_scp, desc=f"prosody {args.data_dir}", mininterval=10):
        m = measure(load_mono(wav_scp[utt], args.fs), args.fs, len(text[utt].split()))
        for k in WORDS:
            raw[k][utt] = m[k]
    for k in WORDS:
        write_kv(out / f"utt2{k}", in_words(raw[k], utt2spk, k))
    logging.info(f"{out}: utt2pitch, utt2pace, utt2loudness for {len(wav_scp)} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
