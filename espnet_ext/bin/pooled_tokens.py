"""Mean-pooled speech tokens of a trained encoder for every utterance of data dirs -> .npz (x, y, keys),
the input of stage 8's linear probe (does the speech-token space carry the emotion?). Several data dirs
(with one --output, --spk_mean_scp and --max_utts each) share one process: the model loads once."""
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.inference import SpeechReader, batch_tensor, load_model, speaker_means
from espnet_ext.datadir import read_kv


def pool(model, train_args, data_dir: Path, output: Path, spk_mean, max_utts: int, batch_size: int,
         device: str) -> None:
    wav_scp, emo = read_kv(data_dir / "wav.scp"), read_kv(data_dir / "utt2emo")
    read = SpeechReader(data_dir, train_args)  # the tensors training and decoding see
    keys = list(wav_scp)
    if max_utts and len(keys) > max_utts:
        keys = [keys[i] for i in np.linspace(0, len(keys) - 1, max_utts).round().astype(int)]
    feats = []
    for i in tqdm(range(0, len(keys), batch_size), desc=f"pool {data_dir}", mininterval=10):
        batch = keys[i:i + batch_size]
        speech, lengths = batch_tensor([read(k) for k in batch], device)
        means = speaker_means(spk_mean, batch, device)
        feats.append(model.pooled_speech_tokens(speech, lengths, means).float().cpu().numpy())
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, x=np.concatenate(feats), y=np.array([emo[k] for k in keys]), keys=np.array(keys))
    logging.info(f"{output}: {len(keys)} utterances")


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--model_dir", type=Path, required=True)
    p.add_argument("--model_file", type=Path, default=None)
    p.add_argument("--data_dir", type=Path, nargs="+", required=True)
    p.add_argument("--output", type=Path, nargs="+", required=True, help="one .npz per data dir")
    p.add_argument("--spk_mean_scp", type=Path, nargs="*", default=[],
                   help="speaker means, for a speaker_norm model (one per data dir)")
    p.add_argument("--max_utts", type=int, nargs="+", default=[0],
                   help="use at most N utterances (evenly spread); 0: all (one value, or one per data dir)")
    p.add_argument("--batch_size", type=cli.positive_int, default=16)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = cli.parse(p, argv)
    n = len(args.data_dir)
    if len(args.output) != n or len(args.spk_mean_scp) not in (0, n) or len(args.max_utts) not in (1, n):
        p.error("give one --output (and one --spk_mean_scp, --max_utts if any) per --data_dir")
    model, train_args = load_model(args.model_dir, args.model_file, args.device)
    for i, (data_dir, output) in enumerate(zip(args.data_dir, args.output)):
        spk_mean = read_kv(args.spk_mean_scp[i]) if args.spk_mean_scp else None
        pool(model, train_args, data_dir, output, spk_mean, args.max_utts[i % len(args.max_utts)], args.batch_size, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
