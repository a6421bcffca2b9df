"""How well can simple prosody statistics tell the emotions apart on voices a model never heard?

The corpus's own ceiling, before any encoder or LLM: per utterance, statistics of the YIN pitch track
(the same one as the ``mel_pitch`` frontend), of the frame energy and of the timing, then a logistic
regression fitted on the training voices and scored on every other set. No speaker normalisation: one
utterance at a time, as the speech encoder sees it.

    python bench/corpus_ceiling.py --data_root egs/synth_emo/palign1/dump/raw  [--sets train valid test test_unseen]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv
from espnet_ext.palign.frontend import yin_pitch


def utterance_features(x: np.ndarray, text: str, fs: int = 16000) -> np.ndarray:
    f0, voicing = yin_pitch(torch.from_numpy(x)[None], fs)
    f0 = f0[0].numpy()
    frames = torch.from_numpy(x).float().unfold(0, 400, 160)
    db = 10 * np.log10(frames.pow(2).mean(-1).numpy() + 1e-10)
    speech = db > db.max() - 35
    voiced = f0 > 0
    lf0 = np.log(f0[voiced]) if voiced.sum() > 2 else np.zeros(3)
    active = db[speech]
    dur = speech.sum() / 100.0
    return np.array([
        lf0.std(), np.percentile(lf0, 90) - np.percentile(lf0, 10),     # pitch range
        np.abs(np.diff(lf0)).mean() if len(lf0) > 1 else 0.0,            # pitch movement
        active.mean(), np.percentile(active, 95), active.std(),          # level and its spread
        dur / max(1, len(text)), len(x) / fs / max(1, len(text)),        # time per character
        1 - speech.mean(), voiced.mean(),                                # pauses, voicing
        lf0.mean(),                                                      # absolute pitch (voice-dependent)
    ])


def load_set(d: Path):
    wav, text, emo = read_kv(d / "wav.scp"), read_kv(d / "text"), read_kv(d / "utt2emo")
    feats = np.stack([utterance_features(load_mono(wav[u], 16000), text[u]) for u in sorted(wav)])
    return feats, np.array([emo[u] for u in sorted(wav)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", type=Path, required=True, help="folder of Kaldi data dirs (dump/raw or data)")
    p.add_argument("--sets", nargs="+", default=["train", "valid", "test", "test_unseen"])
    args = p.parse_args(argv)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = {s: load_set(args.data_root / s) for s in args.sets}
    x, y = data[args.sets[0]]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(x, y)
    print(f"corpus ceiling: logistic regression on {x.shape[1]} prosody statistics, fitted on "
          f"'{args.sets[0]}' ({len(y)} utterances, {len(set(y))} classes)")
    for s in args.sets:
        xs, ys = data[s]
        print(f"  {s:12s} accuracy {np.mean(clf.predict(xs) == ys):.3f}  ({len(ys)} utterances)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
