"""Mean-pooled speech tokens of a trained encoder for every utterance of a data dir -> .npz (x, y, keys),
the input of stage 8's linear probe (does the speech-token space carry the emotion?)."""
import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from espnet_ext.audio import load_mono
from espnet_ext.bin.palign_inference import FS, batch_tensor, load_model, speaker_means
from espnet_ext.datadir import read_kv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model_dir", type=Path, required=True)
    p.add_argument("--model_file", type=Path, default=None)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--spk_mean_scp", type=Path, default=None, help="speaker means, for a speaker_norm model")
    p.add_argument("--max_utts", type=int, default=0, help="use at most N utterances (evenly spread); 0: all")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model, _ = load_model(args.model_dir, args.model_file, args.device)
    wav_scp, emo = read_kv(args.data_dir / "wav.scp"), read_kv(args.data_dir / "utt2emo")
    keys = list(wav_scp)
    spk_mean = read_kv(args.spk_mean_scp) if args.spk_mean_scp is not None else None
    if args.max_utts and len(keys) > args.max_utts:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, args.max_utts).round().astype(int)]
    feats = []
    for i in tqdm(range(0, len(keys), args.batch_size), desc=f"pool {args.data_dir}", mininterval=10):
        batch = keys[i:i + args.batch_size]
        speech, lengths = batch_tensor([load_mono(wav_scp[k], FS) for k in batch], args.device)
        means = speaker_means(spk_mean, batch, args.device)
        feats.append(model.pooled_speech_tokens(speech, lengths, means).float().cpu().numpy())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, x=np.concatenate(feats), y=np.array([emo[k] for k in keys]), keys=np.array(keys))
    logging.info(f"{args.output}: {len(keys)} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
