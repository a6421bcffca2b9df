"""LLM-as-judge: a frozen LLM rates (1-10) how well each reply shows the speaker's emotion was understood.

Real configs use a large judge (e.g. Llama-3-70B-Instruct). Answers without a number in 1..10 are written
as nan and left out of the mean (their count is reported).

Calibration (``--calibrate OUT.json``): before its scores are shown, a judge must rate the teacher's
emotion-conditioned replies (``response``) above the transcript-only replies (``response_neutral``) of a
held-in data dir: a number for both on at least half of its utterances, a higher mean and a significant sign
test of wins over losses. A judge that does not is reported as "failed calibration", not as a score.
"""
import json
import logging
import math
import re
import sys
from pathlib import Path

from tqdm import tqdm

from espnet_ext import cli, yaml_file
from espnet_ext.datadir import read_kv, write_kv
from espnet_ext.envpath import expand
from espnet_ext.palign.prompts import label_words, load_prompt_conf


def parse_score(answer: str) -> str:
    m = re.search(r"\b(10|[1-9])\b", answer)
    return m.group(1) if m else "nan"


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided sign test: the chance of at least ``wins`` wins in ``wins + losses`` fair coin flips."""
    n = wins + losses
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n if n else 1.0


def calibration(teacher: dict, text_only: dict, min_parsed_share: float = 0.5, alpha: float = 0.05) -> dict:
    """Does the judge rank the teacher above the text-only replies? Mean scores of both and the verdict:
    passed when the judge gave a number to both replies of at least ``min_parsed_share`` of the
    utterances, the teacher's mean is higher, and its wins over losses pass a one-sided sign test at
    ``alpha`` (a weak judge that parses a handful of answers can win 2 to 1 by chance)."""
    keys = [k for k in teacher if teacher[k] != "nan" and text_only.get(k, "nan") != "nan"]
    t = [float(teacher[k]) for k in keys]
    o = [float(text_only[k]) for k in keys]
    wins = sum(a > b for a, b in zip(t, o))
    losses = sum(a < b for a, b in zip(t, o))
    teacher_mean = sum(t) / len(t) if t else float("nan")
    text_mean = sum(o) / len(o) if o else float("nan")
    p = sign_test_p(wins, losses)
    enough = len(teacher) > 0 and len(keys) >= min_parsed_share * len(teacher)
    return {"utterances": len(keys), "of": len(teacher), "teacher_mean": teacher_mean,
            "text_only_mean": text_mean, "teacher_wins": wins, "teacher_losses": losses, "sign_test_p": p,
            "passed": bool(keys) and enough and teacher_mean > text_mean and p <= alpha}


class Judge:
    def __init__(self, llm_conf: dict, judge_prompt: str, prompt_conf, device: str, batch_size: int = 16):
        from espnet_ext.palign.llm import FrozenLLM

        self.prompt = yaml_file.load(expand(judge_prompt, "judge_prompt"))
        self.words = load_prompt_conf(prompt_conf)
        self.llm = FrozenLLM(llm_conf["name_or_path"], dtype=llm_conf.get("dtype", "auto"),
                             system=self.prompt.get("system"), device=device)
        self.batch_size = batch_size

    def rate(self, ref_dir: Path, replies: dict) -> dict:
        text, emo = read_kv(ref_dir / "text"), read_kv(ref_dir / "utt2emo")
        keys = list(text)
        users = [self.prompt["user"].format(text=text[k], emotion=label_words(self.words, emo[k])[0],
                                            reply=replies.get(k, "")) for k in keys]
        scores = {}
        for i in tqdm(range(0, len(keys), self.batch_size), desc="judge", mininterval=10):
            answers = self.llm.generate_from_text(users[i:i + self.batch_size], 4)
            for k, a in zip(keys[i:i + self.batch_size], answers):
                scores[k] = parse_score(a)
        return scores


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--ref_dir", type=Path, required=True, help="test data dir (text, utt2emo)")
    p.add_argument("--hyp", type=Path, default=None, help="replies (Kaldi text)")
    p.add_argument("--output", type=Path, default=None, help="the scores (Kaldi text), with --hyp")
    p.add_argument("--calibrate", type=Path, default=None,
                   help="rate the teacher's response and response_neutral (in --targets_dir) and write the "
                        "verdict to this JSON")
    p.add_argument("--targets_dir", type=Path, default=None,
                   help="stage 4's target dir of --ref_dir's set (exp/teacher_*/<set>); default --ref_dir")
    cli.add_llm_options(p, generation=False)  # a judge YAML (--config) sets them, with judge_prompt
    p.add_argument("--judge_prompt", default=None, help="YAML with the judge's system and user turns")
    p.add_argument("--device", default="cpu")
    args = cli.parse(p, argv)
    if (args.hyp is None) == (args.calibrate is None):
        p.error("give either --hyp (with --output) or --calibrate")
    if not args.judge_prompt:
        p.error("--judge_prompt is required (or a judge YAML given as --config)")
    conf = cli.llm_conf(args)
    judge = Judge(conf["llm_conf"], args.judge_prompt, conf["prompt_conf"], args.device, args.batch_size)
    if args.calibrate is not None:
        targets = args.targets_dir or args.ref_dir
        verdict = calibration(judge.rate(args.ref_dir, read_kv(targets / "response")),
                              judge.rate(args.ref_dir, read_kv(targets / "response_neutral")))
        args.calibrate.parent.mkdir(parents=True, exist_ok=True)
        args.calibrate.write_text(json.dumps(verdict, indent=1) + "\n")
        logging.info(f"judge calibration: {verdict}")
        return 0
    if args.output is None:
        p.error("--output is required with --hyp")
    scores = judge.rate(args.ref_dir, read_kv(args.hyp))
    write_kv(args.output, scores)
    logging.info(f"{args.output}: {sum(v != 'nan' for v in scores.values())} of {len(scores)} answers parsed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
