#!/usr/bin/env python3
"""How much of the reply targets depends on the words that were said: for each teacher reply, the share of its
words that are the leading emotion clause "(...)" and the share that are content words of its own transcript.
A target whose words barely depend on the transcript gives the alignment little reason to learn the words.

  python local/reply_word_share.py --teacher exp/teacher_smollm2 --sets "train test test_unseen"
"""
import argparse
import sys

from espnet_ext.datadir import read_kv
from espnet_ext.metrics import word_share


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="exp/teacher_smollm2", help="stage 4's dir: <set>/response")
    p.add_argument("--data", default="dump/raw", help="the data dirs: <set>/text")
    p.add_argument("--sets", default="train test test_unseen")
    p.add_argument("--target", default="response", help="the teacher file to read, e.g. response_neutral")
    args = p.parse_args(argv)
    print("set\treplies\twords_per_reply\topens_with_clause\tclause_share\town_content_share")
    for s in args.sets.split():
        replies, text = f"{args.teacher}/{s}/{args.target}", f"{args.data}/{s}/text"
        try:
            r = word_share(read_kv(replies), read_kv(text))
        except ValueError as e:
            raise SystemExit(f"reply_word_share.py: {replies} against {text}: {e}")
        print(f"{s}\t{r['replies']}\t{r['words_per_reply']:.1f}\t{r['opens_with_clause']:.3f}\t"
              f"{r['clause_share']:.3f}\t{r['own_content_share']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
