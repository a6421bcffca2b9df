"""Data-dir tools behind egs/TEMPLATE/palign1/utils/*.sh (validate, fix, subset, split, combine)."""
import sys
from pathlib import Path

from espnet_ext import cli, datadir, yaml_file


def main(argv=None) -> int:
    parser = cli.get_parser(__doc__, prog="python -m espnet_ext.bin.data_dir")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("validate", help="check a data dir; exit 1 naming file/line/utterance")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--audio_check", type=cli.str2bool, default=True, help="open every audio file")
    p.add_argument("--require_emotion", type=cli.str2bool, default=True, help="utt2emo is required")
    p = sub.add_parser("fix", help="sort, keep utterances found in every file, rebuild spk2utt")
    p.add_argument("data_dir", type=Path)
    p = sub.add_parser("subset", help="copy a data dir keeping some utterances")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--utt_list", type=Path, help="file whose first column lists utterances to keep")
    g.add_argument("--first", type=int, help="keep the first N utterances")
    g.add_argument("--last", type=int, help="keep the last N utterances")
    g.add_argument("--spk_list", type=Path, help="file whose first column lists speakers to keep")
    p = sub.add_parser("split", help="split into DIR/splitN/{1..N}")
    p.add_argument("data_dir", type=Path)
    p.add_argument("num", type=cli.positive_int)
    p.add_argument("--per_spk", type=cli.str2bool, default=False, help="never split a speaker across parts")
    p.add_argument("--out", type=Path, default=None, help="parts go to OUT/1..N (default DIR/splitN)")
    p = sub.add_parser("combine", help="merge data dirs into DST")
    p.add_argument("dst", type=Path)
    p.add_argument("srcs", type=Path, nargs="+")
    p = sub.add_parser("relabel", help="map utt2emo into another label space (originals kept in utt2origemo)")
    p.add_argument("data_dir", type=Path)
    p.add_argument("--map", type=Path, required=True, help="YAML mapping label -> new label")
    p.add_argument("--section", default=None, help="use this top-level section of the YAML file")
    p.add_argument("--drop_unmapped", type=cli.str2bool, default=False, help="drop (and count) utterances with unmapped labels")
    args = cli.parse(parser, argv)

    try:
        if args.cmd == "validate":
            required = [r for r in datadir.REQUIRED if args.require_emotion or r != "utt2emo"]
            counts = datadir.validate(args.data_dir, required, check_audio=args.audio_check)
            piped = [k for k in counts if k.startswith("piped")]
            print(f"{args.data_dir}: OK" + (" except unchecked commands" if piped else "") + ", "
                  + ", ".join(f"{v} {k}" for k, v in counts.items()))
        elif args.cmd == "fix":
            dropped = datadir.fix(args.data_dir)
            lost = {k: v for k, v in dropped.items() if v}
            print(f"{args.data_dir}: fixed" + (f"; dropped lines: {lost}" if lost else "; nothing dropped"))
        elif args.cmd == "subset":
            utts = list(datadir.read_kv(args.src / "utt2spk"))
            if args.utt_list:
                keep = [line.split()[0] for line in args.utt_list.read_text().splitlines() if line.strip()]
            elif args.first is not None:
                keep = utts[:args.first]
            elif args.last is not None:
                keep = utts[len(utts) - args.last:]
            else:
                spks = {line.split()[0] for line in args.spk_list.read_text().splitlines() if line.strip()}
                utt2spk = datadir.read_kv(args.src / "utt2spk")
                keep = [u for u in utts if utt2spk[u] in spks]
            n = datadir.subset(args.src, args.dst, keep)
            print(f"{args.dst}: {n} utterances from {args.src}")
        elif args.cmd == "split":
            parts = datadir.split(args.data_dir, args.num, by_speaker=args.per_spk, out=args.out)
            print(f"{args.data_dir}: split into {len(parts)} parts under {parts[0].parent}")
        elif args.cmd == "relabel":
            mapping = yaml_file.load(args.map)
            if args.section:
                if args.section not in mapping:
                    raise datadir.DataDirError(f"{args.map}: no section '{args.section}'")
                mapping = mapping[args.section]
            counts = datadir.relabel(args.data_dir, {str(k): str(v) for k, v in mapping.items()}, args.drop_unmapped)
            print(f"{args.data_dir}: relabelled: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        elif args.cmd == "combine":
            n = datadir.combine(args.dst, args.srcs)
            print(f"{args.dst}: {n} utterances from {len(args.srcs)} dirs")
    except (datadir.DataDirError, FileNotFoundError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
