"""LLM-as-judge: a frozen LLM rates (1-10) how well each reply shows the speaker's emotion was understood.

Real configs use a large judge (e.g. Llama-3-70B-Instruct); the embedded recipe uses its small LLM, whose
scores RESULTS.md marks as those of a weak judge. Answers without a number in 1..10 are written as nan and
left out of the mean (their count is reported).
"""
import argparse
import logging
import re
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from espnet_ext.datadir import read_kv, write_kv
from espnet_ext.palign.prompts import label_words, load_prompt_conf


def parse_score(answer: str) -> str:
    m = re.search(r"\b(10|[1-9])\b", answer)
    return m.group(1) if m else "nan"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ref_dir", type=Path, required=True, help="test data dir (text, utt2emo)")
    p.add_argument("--hyp", type=Path, required=True, help="replies (Kaldi text)")
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--config", type=Path, required=True, help="judge YAML: llm_conf, judge_prompt, prompt_conf")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from espnet_ext.palign.llm import FrozenLLM

    cfg = yaml.safe_load(args.config.read_text())
    judge = yaml.safe_load(Path(__import__("os").path.expandvars(cfg["judge_prompt"])).read_text())
    words = load_prompt_conf(cfg["prompt_conf"])
    llm = FrozenLLM(cfg["llm_conf"]["name_or_path"], dtype=cfg["llm_conf"].get("dtype", "auto"),
                    system=judge.get("system"), device=args.device)
    text, emo, hyp = read_kv(args.ref_dir / "text"), read_kv(args.ref_dir / "utt2emo"), read_kv(args.hyp)
    keys = list(text)
    users = [judge["user"].format(text=text[k], emotion=label_words(words, emo[k])[0], reply=hyp.get(k, ""))
             for k in keys]
    scores = {}
    for i in tqdm(range(0, len(keys), args.batch_size), desc="judge", mininterval=10):
        for k, a in zip(keys[i:i + args.batch_size], llm.generate_from_text(users[i:i + args.batch_size], 4)):
            scores[k] = parse_score(a)
    write_kv(args.output, scores)
    logging.info(f"{args.output}: {sum(v != 'nan' for v in scores.values())} of {len(scores)} answers parsed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
