"""Rewrite (or, with --check, verify) the headline results block of READMEs from a committed RESULTS.md.

    python -m espnet_ext.bin.sync_readme                  # README.md and egs/synth_emo/palign1/README.md
    python -m espnet_ext.bin.sync_readme --check          # exit 1 naming each README whose block differs
    python -m espnet_ext.bin.sync_readme --results R --readmes A.md B.md
"""
import os
import sys
from pathlib import Path

from espnet_ext import cli
from espnet_ext import readme_results as rr

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = ROOT / "egs" / "synth_emo" / "palign1" / "RESULTS.md"
DEFAULT_READMES = [ROOT / "README.md", ROOT / "egs" / "synth_emo" / "palign1" / "README.md"]


def get_parser():
    p = cli.get_parser(__doc__)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the RESULTS.md the numbers come from")
    p.add_argument("--readmes", type=Path, nargs="+", default=DEFAULT_READMES, help="READMEs holding a block")
    p.add_argument("--test_sets", nargs="+", default=["test", "test_unseen"])
    p.add_argument("--check", type=cli.str2bool, nargs="?", const=True, default=False,
                   help="only compare; exit 1 if a block differs from what RESULTS.md renders to")
    return p


def main(argv=None) -> int:
    args = cli.parse(get_parser(), argv)
    if not args.results.is_file():
        raise SystemExit(f"sync_readme: {args.results} does not exist (stage 12 writes it)")
    stale = []
    for readme in args.readmes:
        if not readme.is_file():
            raise SystemExit(f"sync_readme: {readme} does not exist")
        link = Path(os.path.relpath(args.results.resolve(), readme.resolve().parent)).as_posix()
        text = readme.read_text()
        try:
            block = rr.render(args.results.read_text(), link, args.test_sets)
            new = rr.replace_block(text, block, str(readme))
        except ValueError as e:
            raise SystemExit(f"sync_readme: {e}")
        if new == text:
            print(f"{readme}: up to date")
        elif args.check:
            stale.append(readme)
            print(f"{readme}: its results block differs from {args.results} "
                  "(run python -m espnet_ext.bin.sync_readme)", file=sys.stderr)
        else:
            readme.write_text(new)
            print(f"{readme}: results block rewritten from {args.results}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
