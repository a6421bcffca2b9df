"""Emotion labels predicted by an ESPnet ``cls`` model (espnet2.bin.cls_inference.Classification) for every
utterance of a data dir -> utt2emo-style file, for the cascade baseline (stage 11)."""
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.audio import load_mono
from espnet_ext.inference import find_model_file
from espnet_ext.datadir import read_kv, write_kv


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--model_dir", type=Path, required=True, help="cls_train output dir (config.yaml, *.pth)")
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--device", default="cpu")
    args = cli.parse(p, argv)
    import espnet2.tasks.cls as cls_task
    from espnet2.bin.cls_inference import Classification

    from espnet_ext.palign.frontend import register_in_espnet_task

    register_in_espnet_task(cls_task)  # a model trained by bin/cls_train.py may use mel_pitch

    from espnet_ext.model_io import ModelFileError, load_state_strict

    model = Classification(args.model_dir / "config.yaml", None, device=args.device)  # built, untrained
    try:  # tensors only, every key (ESPnet's loader unpickles anything and loads non-strictly)
        load_state_strict(model.classification_model, find_model_file(args.model_dir), args.device).eval()
    except ModelFileError as e:
        raise SystemExit(str(e))
    wav_scp = read_kv(args.data_dir / "wav.scp")
    pred = {}
    for utt in tqdm(wav_scp, desc="classify", mininterval=10):
        _, _, label = model(load_mono(wav_scp[utt], 16000))
        pred[utt] = label
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_kv(args.output, pred)
    ref = read_kv(args.data_dir / "utt2emo")
    acc = sum(pred[u] == ref.get(u) for u in pred) / max(1, len(pred))
    logging.info(f"{args.output}: {len(pred)} predictions, accuracy against utt2emo {acc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
