"""Each speaker's mean frontend features, for ``speaker_norm: true`` (per-speaker mean subtraction).

For every data dir: the frontend of the training config runs over every utterance; a speaker's mean is the
average of its utterances' mean feature vectors (each utterance weighs the same, however long). Writes
OUT/<set>/<speaker>.npy and OUT/<set>/spk_mean.scp (``utt path``: the data field ``spk_mean``, type npy).
Only audio is used, no label: at test time this is what a system may know of a speaker it has heard.

    python -m espnet_ext.bin.speaker_stats --config conf/train.yaml --data_dirs dump/raw/train ... --out exp/spk_stats/x
"""
import logging
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv, write_kv
from espnet_ext.inference import FS


@torch.no_grad()
def utterance_means(frontend, wav_scp: dict, batch_size: int = 16) -> dict:
    from espnet_ext.palign.model import masked_mean

    keys = sorted(wav_scp)
    means = {}
    for i in tqdm(range(0, len(keys), batch_size), desc="speaker stats", mininterval=10):
        batch = keys[i:i + batch_size]
        waves = []
        for k in batch:
            try:
                waves.append(torch.from_numpy(load_mono(wav_scp[k], FS)))
            except Exception as e:
                raise SystemExit(f"wav.scp: utterance '{k}': cannot read audio: {e}")
        lengths = torch.tensor([len(w) for w in waves])
        speech = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        feats, feat_lengths = frontend(speech, lengths)
        for k, m in zip(batch, masked_mean(feats, feat_lengths)):
            means[k] = m.numpy()
    return means


def utterance_means_from_dump(feats_scp: Path, keys) -> dict:
    """The same means from stage 3's dumped features (the frontend's output, one utterance each)."""
    import kaldiio

    table = kaldiio.load_scp(str(feats_scp))
    missing = [k for k in keys if k not in table]
    if missing:
        raise SystemExit(f"{feats_scp}: {len(missing)} utterance(s) of wav.scp have no features (e.g. "
                         f"'{missing[0]}'): rerun stage 3")
    return {k: table[k].mean(0).astype(np.float32) for k in tqdm(sorted(keys), desc="speaker stats", mininterval=10)}


def speaker_means(utt_means: dict, utt2spk: dict) -> dict:
    by_spk = defaultdict(list)
    for utt, m in utt_means.items():
        by_spk[utt2spk[utt]].append(m)
    return {spk: np.mean(ms, axis=0).astype(np.float32) for spk, ms in by_spk.items()}


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--train_config", type=Path, required=True,
                   help="the training YAML, whose frontend and frontend_conf compute the features")
    p.add_argument("--data_dirs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True, help="OUT/<set name>/spk_mean.scp is written")
    p.add_argument("--feats_dir", type=Path, default=None,
                   help="stage 3's dump: FEATS_DIR/<set name>/feats.scp is read instead of running the frontend")
    args = cli.parse(p, argv)
    from espnet_ext.tasks.palign import build_frontend

    frontend = None if args.feats_dir is not None else build_frontend(args.train_config)
    for d in args.data_dirs:
        out = args.out / d.name
        wav_scp = read_kv(d / "wav.scp")
        if (out / "spk_mean.scp").exists() and set(read_kv(out / "spk_mean.scp")) == set(wav_scp):
            logging.info(f"{out}/spk_mean.scp: up to date")
            continue
        utt2spk = read_kv(d / "utt2spk")
        utt_means = (utterance_means(frontend, wav_scp) if frontend is not None
                     else utterance_means_from_dump(args.feats_dir / d.name / "feats.scp", wav_scp))
        means = speaker_means(utt_means, utt2spk)
        out.mkdir(parents=True, exist_ok=True)
        for spk, m in means.items():
            np.save(out / f"{spk}.npy", m)
        write_kv(out / "spk_mean.scp", {u: str((out / f"{utt2spk[u]}.npy").resolve()) for u in wav_scp})
        logging.info(f"{out}/spk_mean.scp: {len(means)} speakers, {len(utt2spk)} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
