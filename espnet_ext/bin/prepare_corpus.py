"""Stage 1 for real corpora: IEMOCAP, MSP-Podcast and Expresso releases -> Kaldi data dirs.

  prepare_corpus iemocap --root $IEMOCAP --out data [--test_session 5 --label_map 4class --suffix _s5]
  prepare_corpus msp_podcast --root $MSP_PODCAST --out data [--classes A H S N ... --missing_transcript drop|asr]
  prepare_corpus expresso --root $EXPRESSO --out data [--splits_dir DIR --conversational false]
"""
import sys
from pathlib import Path

from espnet_ext import cli
from espnet_ext.corpora import expresso, iemocap, msp_podcast
from espnet_ext.corpora.common import CorpusError
from espnet_ext.datadir import DataDirError


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    sub = p.add_subparsers(dest="corpus", required=True)
    for name in ("iemocap", "msp_podcast", "expresso"):
        s = sub.add_parser(name)
        s.add_argument("--root", type=Path, required=True, help="corpus root (from db.sh)")
        s.add_argument("--out", type=Path, default=Path("data"))
        s.add_argument("--audio_check", type=cli.str2bool, default=True, help="open every audio file")
        if name == "iemocap":
            s.add_argument("--test_session", type=int, default=5)
            s.add_argument("--label_map", default="4class", choices=sorted(iemocap.LABEL_MAPS))
            s.add_argument("--valid_ratio", type=float, default=0.1)
            s.add_argument("--suffix", default="", help="appended to the split names, e.g. _s5 for a fold")
            s.add_argument("--split", default="loso", choices=iemocap.SPLITS,
                           help="loso: test = --test_session, valid = some dialogs of the others; espnet: "
                                "ESPnet's recipe split (train Ses01-03 + Ses04F, valid Ses04M, test Ses05)")
        elif name == "msp_podcast":
            s.add_argument("--classes", nargs="+", default=list(msp_podcast.DEFAULT_CLASSES))
        if name in ("msp_podcast", "expresso"):
            s.add_argument("--missing_transcript", choices=["drop", "asr"], default="drop")
        if name == "expresso":
            s.add_argument("--splits_dir", type=Path, default=None, help="default: ROOT/splits")
            s.add_argument("--conversational", type=cli.str2bool, default=False,
                           help="also the improvised dialogues (one channel per speaker)")
    args = cli.parse(p, argv)
    check = args.audio_check
    try:
        if args.corpus == "iemocap":
            counts = iemocap.prepare(args.root, args.out, args.test_session, args.label_map, args.valid_ratio,
                                     args.suffix, check, args.split)
        elif args.corpus == "msp_podcast":
            # "A,H,S,N" passes through run.sh --local_data_opts as one word; "A H S N" arrives from data.sh
            classes = [c for arg in args.classes for c in arg.replace(",", " ").split()]
            counts = msp_podcast.prepare(args.root, args.out, classes, args.missing_transcript, check)
        else:
            counts = expresso.prepare(args.root, args.out, args.splits_dir, args.conversational,
                                      args.missing_transcript, check)
    except (CorpusError, DataDirError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    for split, c in counts.items():
        print(f"{args.out / split}: " + ", ".join(f"{v} {k}" for k, v in c.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
