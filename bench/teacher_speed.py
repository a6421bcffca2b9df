"""Teacher generation (stage 4): batched, length-sorted, prefix-cached greedy decoding vs one prompt at a time.

Both generate greedy replies to the same teacher prompts with the same frozen LLM, in the same process;
tokens/s counts generated reply tokens. Prints the ratio batched / sequential (target >= 5) and checks that
both give the same replies.

  python bench/teacher_speed.py --llm egs/synth_emo/palign1/downloads/llm/SmolLM2-135M-Instruct \\
      [--prompts 64 --batch_size 64 --max_new_tokens 24]
"""
import argparse
import os
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MAIN_ROOT", str(ROOT))


def teacher_prompts(n: int, seed: int = 0):
    from espnet_ext.palign.prompts import load_prompt_conf, teacher_prompt

    conf = load_prompt_conf(ROOT / "conf" / "prompts" / "emotion.yaml")
    lines = (ROOT / "egs" / "synth_emo" / "palign1" / "local" / "sentences.txt").read_text().splitlines()
    sentences = [s.strip() for s in lines if s.strip() and not s.startswith("#")]
    rng = random.Random(seed)
    users = [teacher_prompt(conf, rng.choice(["response", "emotion"]), rng.choice(sentences),
                            rng.choice(["neutral", "happy", "sad", "angry"])) for _ in range(n)]
    return conf, users


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llm", required=True)
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=64, help="stage 4's batch_size (conf/teacher_smollm2.yaml)")
    p.add_argument("--max_new_tokens", type=int, default=24)
    args = p.parse_args(argv)
    from espnet_ext.palign.llm import FrozenLLM

    conf, users = teacher_prompts(args.prompts)
    llm = FrozenLLM(args.llm, system=conf.get("system"))
    llm.generate_from_text(users[:2], 4)  # warm-up

    def tokens(replies):
        return sum(len(llm.chat.encode(r)) for r in replies)

    t = time.perf_counter()
    sequential = [llm.generate_from_embeds([llm.embed(torch.tensor(llm.chat.encode(llm.chat.render(u))))],
                                           args.max_new_tokens)[0] for u in users]
    seq_time = time.perf_counter() - t
    order = sorted(range(len(users)), key=lambda i: len(users[i]))  # as stage 4 does
    t = time.perf_counter()
    batched = [None] * len(users)
    for i in range(0, len(order), args.batch_size):
        idx = order[i:i + args.batch_size]
        for j, r in zip(idx, llm.generate_from_text([users[k] for k in idx], args.max_new_tokens)):
            batched[j] = r
    bat_time = time.perf_counter() - t
    same = sum(a == b for a, b in zip(sequential, batched))
    seq_tps, bat_tps = tokens(sequential) / seq_time, tokens(batched) / bat_time
    print(f"LLM: {args.llm}; {len(users)} teacher prompts, {torch.get_num_threads()} threads, "
          f"max {args.max_new_tokens} new tokens")
    print(f"one at a time:                       {seq_tps:7.1f} tokens/s ({seq_time:.1f} s)")
    print(f"batched ({args.batch_size}), sorted, prefix cached: {bat_tps:7.1f} tokens/s ({bat_time:.1f} s)")
    print(f"identical replies: {same} of {len(users)} (padding may flip near-ties in fp32)")
    print(f"ratio batched / sequential: {bat_tps / seq_tps:.2f}  (target >= 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
