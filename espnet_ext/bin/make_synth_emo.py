"""Stage 1 of egs/synth_emo: synthesise the embedded expressive corpus into Kaldi data dirs."""
import logging
import sys
from pathlib import Path

from espnet_ext import cli
from espnet_ext.synth.synth_emo import Design, build


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--sentences", type=Path, required=True, help="one sentence a line")
    p.add_argument("--data_dir", type=Path, default=Path("data"))
    p.add_argument("--wav_dir", type=Path, default=Path("downloads/synth_emo"))
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--fs", type=int, default=16000)
    for field, default in Design().__dict__.items():
        p.add_argument(f"--{field}", type=int, default=default)
    args = cli.parse(p, argv)
    design = Design(**{k: getattr(args, k) for k in Design().__dict__})
    splits = ("train", "valid", "test", "test_unseen") + (("train_words",) if design.words_utterances else ())
    counts = build(args.sentences, args.data_dir, args.wav_dir, seed=args.seed, fs=args.fs, design=design,
                   splits=splits)
    for split, c in counts.items():
        logging.info(f"{split}: " + ", ".join(f"{v} {k}" for k, v in c.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
