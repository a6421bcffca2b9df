"""How well can simple prosody statistics tell the emotions apart on voices a model never heard?

The corpus's own ceiling, before any encoder or LLM: per utterance, statistics of the YIN pitch track
(the same one as the ``mel_pitch`` frontend), of the frame energy and of the timing; two quick classifiers
(logistic regression, gradient-boosted trees) fitted on the training voices and scored on every other set,
once on the raw statistics (one utterance alone) and once with each speaker's mean statistics subtracted
(what ``speaker_norm`` does to the features: the speaker's mean comes from its audio, not its labels).

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
    """(raw statistics, speaker-normalised statistics, labels) of a data dir."""
    wav, text, emo, spk = (read_kv(d / f) for f in ("wav.scp", "text", "utt2emo", "utt2spk"))
    keys = sorted(wav)
    feats = np.stack([utterance_features(load_mono(wav[u], 16000), text[u]) for u in keys])
    speakers = np.array([spk[u] for u in keys])
    normed = feats.copy()
    for s in set(speakers):
        normed[speakers == s] -= feats[speakers == s].mean(0)
    return feats, normed, np.array([emo[u] for u in keys])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_root", type=Path, required=True, help="folder of Kaldi data dirs (dump/raw or data)")
    p.add_argument("--sets", nargs="+", default=["train", "valid", "test", "test_unseen"])
    args = p.parse_args(argv)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = {s: load_set(args.data_root / s) for s in args.sets}
    train = args.sets[0]
    print(f"corpus ceiling: accuracy of quick classifiers on {data[train][0].shape[1]} prosody statistics, "
          f"fitted on '{train}' ({len(data[train][2])} utterances, {len(set(data[train][2]))} classes)")
    print("| classifier | features | " + " | ".join(args.sets) + " |")
    print("|---|---|" + "---|" * len(args.sets))
    classifiers = {"logistic regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
                   "gradient-boosted trees": lambda: HistGradientBoostingClassifier(random_state=0)}
    for name, make in classifiers.items():
        for col, feats in ((0, "one utterance"), (1, "speaker-normalised")):
            clf = make().fit(data[train][col], data[train][2])
            accs = [np.mean(clf.predict(data[s][col]) == data[s][2]) for s in args.sets]
            print(f"| {name} | {feats} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
