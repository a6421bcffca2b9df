"""Which system prompt gives targets that carry the emotion? Two numbers of the frozen teacher alone.

For each candidate system prompt, the frozen LLM writes the teacher's replies (``response`` task) and its
answers to the emotion question (``emotion`` task) for every (sentence, emotion) of a data dir, as stage 4
would. Printed per prompt:

- ``teacher WA``: how often its emotion answer names the emotion it was told (the topline of the
  emotion-by-prompting metric; a student that imitates the teacher cannot beat it);
- ``emotion-only pairs``: the minimal-pair sensitivity of a student that names every emotion right but hears
  no words: it answers each utterance with its emotion's most central teacher reply (highest mean ROUGE-L to
  the other replies of that emotion). It bounds what an encoder that carries no words can reach;
- ``random same-emotion``: the same with a random reply of the same emotion to another sentence (5 draws);
- ``own words``: the share of a reply's words that are content words of its own transcript
  (``metrics.word_share``): how much of the target depends on what was said, so how much reason the
  alignment has to learn the words (the committed targets: 2.6 % on train, docs/results.md).

Choose on a development set (the recipe chose on synth_emo's ``valid``), never on test.

    python bench/teacher_prompts.py --data_dir egs/synth_emo/palign1/dump/raw/valid \\
        --llm egs/synth_emo/palign1/downloads/llm/SmolLM2-135M-Instruct [--systems my_prompts.txt]
"""
import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch

from espnet_ext import metrics
from espnet_ext.datadir import read_kv
from espnet_ext.palign.llm import FrozenLLM
from espnet_ext.palign.prompts import load_prompt_conf, teacher_prompt

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    "You are a kind, brief assistant. Reply to what the user says in a way that fits how they feel.",
    "You are a kind, brief assistant. First say in a few words how the user feels, then reply to what they say.",
    "You are a kind, brief assistant. First say in a few words how the user feels, then reply to what they say "
    "in a way that fits it.",
    "You are a kind, brief assistant. First say how the user feels, then reply to what they say.",
]


def generate(llm: FrozenLLM, users, max_new_tokens: int, batch_size: int = 64):
    order = np.argsort([len(u) for u in users])  # similar lengths per batch, as stage 4 does
    out = [None] * len(users)
    for i in range(0, len(users), batch_size):
        idx = order[i: i + batch_size]
        for j, reply in zip(idx, llm.generate_from_text([users[j] for j in idx], max_new_tokens)):
            out[j] = reply
    return out


def evaluate(llm: FrozenLLM, conf: dict, data_dir: Path, max_new_tokens: int, seeds: int = 5) -> dict:
    text, emo, sent = (read_kv(data_dir / f) for f in ("text", "utt2emo", "utt2sentid"))
    spk = read_kv(data_dir / "utt2spk")
    keys = sorted({(sent[u], emo[u]) for u in text})
    sentence = {sent[u]: text[u] for u in text}
    replies = dict(zip(keys, generate(llm, [teacher_prompt(conf, "response", sentence[s], e) for s, e in keys],
                                      max_new_tokens)))
    answers = generate(llm, [teacher_prompt(conf, "emotion", sentence[s], e) for s, e in keys], 8)
    wa = float(np.mean([metrics.map_emotion(a) == e for a, (_, e) in zip(answers, keys)]))
    refs = {u: replies[(sent[u], emo[u])] for u in text}
    pairs = metrics.minimal_pairs({u: f"{spk[u]}_{sent[u]}" for u in text}, emo)
    central = {}
    for e in sorted(set(emo.values())):
        mine = [replies[k] for k in keys if k[1] == e]
        central[e] = max(mine, key=lambda c: np.mean([metrics.rouge_l_pair(r, c) for r in mine]))
    pair_central = metrics.pair_sensitivity({u: central[emo[u]] for u in text}, refs, pairs)["pair_sensitivity"]
    draws = []
    for seed in range(seeds):
        rng = random.Random(seed)
        hyp = {u: replies[(rng.choice([s for s, e in keys if e == emo[u] and s != sent[u]]), emo[u])] for u in text}
        draws.append(metrics.pair_sensitivity(hyp, refs, pairs)["pair_sensitivity"])
    share = metrics.word_share({f"{s} {e}": r for (s, e), r in replies.items()},
                               {f"{s} {e}": sentence[s] for s, e in keys})
    return {"teacher_wa": wa, "pairs_central": pair_central, "pairs_random": float(np.mean(draws)),
            "pairs_random_std": float(np.std(draws)), "pairs": len(pairs), "example": replies[keys[0]],
            "own_words": share["own_content_share"], "clause": share["clause_share"],
            "words": share["words_per_reply"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", type=Path, required=True, help="data dir with text, utt2emo, utt2sentid, utt2spk")
    p.add_argument("--llm", required=True, help="the frozen LLM (local folder or HF id)")
    p.add_argument("--prompt_conf", type=Path, default=ROOT / "conf" / "prompts" / "emotion.yaml")
    p.add_argument("--systems", type=Path, default=None, help="one candidate system prompt per line")
    p.add_argument("--max_new_tokens", type=int, default=24, help="as the teacher config's")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    conf = load_prompt_conf(args.prompt_conf)
    systems = ([line.strip() for line in args.systems.read_text().splitlines() if line.strip()]
               if args.systems else CANDIDATES)
    print(f"{args.data_dir}: teacher WA | emotion-only pairs (central reply) | random same-emotion reply | "
          f"own words | clause | words per reply")
    for system in systems:
        r = evaluate(FrozenLLM(args.llm, system=system), conf, args.data_dir, args.max_new_tokens)
        print(f"{r['teacher_wa']:.3f} | {r['pairs_central']:.3f} | {r['pairs_random']:.3f}±{r['pairs_random_std']:.3f}"
              f" | {r['own_words']:.3f} | {r['clause']:.3f} | {r['words']:.1f}  ({r['pairs']} pairs)  {system!r}\n"
              f"      e.g. {r['example']!r}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
