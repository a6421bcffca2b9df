"""Reference system "true emotion, no words": each test utterance gets the teacher's reply to a *training*
utterance of the same emotion and another sentence.

It hears the emotion perfectly and knows nothing of what was said, so its pair sensitivity is what hearing
alone can buy: a speech system at this number replies with the right emotion but not to the words, and
only the words (the reply's fidelity to the sentence) can take it higher. No LLM runs; writes
<out_dir>/text, which stage 8 scores like any system's replies.
"""
import logging
import random
import sys
from pathlib import Path
from typing import Dict

from espnet_ext import cli
from espnet_ext.datadir import read_kv, write_kv


def _sentence(text: str) -> str:
    return " ".join(text.lower().split())


def emotion_only_replies(test_emo: Dict[str, str], test_text: Dict[str, str], train_replies: Dict[str, str],
                         train_emo: Dict[str, str], train_text: Dict[str, str], seed: int = 0) -> Dict[str, str]:
    """utt -> a teacher reply drawn (seeded) from the training utterances of its emotion whose transcript
    differs from its own."""
    pool: Dict[str, list] = {}  # emotion -> [(normalised sentence, utt)], each transcript normalised once
    for utt in sorted(train_replies):
        if utt not in train_emo or utt not in train_text:
            raise SystemExit(f"training utterance '{utt}' has a teacher reply but no "
                             f"{'utt2emo' if utt not in train_emo else 'text'} entry")
        pool.setdefault(train_emo[utt], []).append((_sentence(train_text[utt]), utt))
    rng = random.Random(seed)
    out = {}
    for utt, emo in test_emo.items():
        if utt not in test_text:
            raise SystemExit(f"test utterance '{utt}' has no transcript (text)")
        own = _sentence(test_text[utt])
        others = [u for sent, u in pool.get(emo, []) if sent != own]
        if not others:
            raise SystemExit(f"test utterance '{utt}': no training reply of emotion '{emo}' to another sentence, "
                             f"so this reference cannot be made for this test set: leave emotion_only out of "
                             f"palign.sh --baselines")
        out[utt] = train_replies[rng.choice(others)]
    return out


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--ref_dir", type=Path, required=True, help="test data dir (text, utt2emo)")
    p.add_argument("--train_dir", type=Path, required=True, help="training data dir (text, utt2emo)")
    p.add_argument("--train_replies", type=Path, required=True,
                   help="the teacher's replies to the training set (stage 4: exp/teacher_*/<train_set>/response)")
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    args = cli.parse(p, argv)
    for path in (args.ref_dir / "utt2emo", args.ref_dir / "text", args.train_dir / "utt2emo",
                 args.train_dir / "text", args.train_replies):
        if not path.is_file():
            raise SystemExit(f"emotion_only_system: {path} does not exist")
    replies = emotion_only_replies(read_kv(args.ref_dir / "utt2emo"), read_kv(args.ref_dir / "text"),
                                   read_kv(args.train_replies), read_kv(args.train_dir / "utt2emo"),
                                   read_kv(args.train_dir / "text"), args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_kv(args.out_dir / "text", replies)
    logging.info(f"{args.out_dir}/text: {len(replies)} replies of the true emotion to other sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
