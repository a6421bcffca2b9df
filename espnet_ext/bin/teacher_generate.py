"""Stage 4: the frozen LLM answers each utterance's transcript (with / without its emotion) -> targets.

Three steps, so that generation can be sharded and resumed:
  prepare   unique teacher prompts over all data dirs -> OUT/prompts.jsonl (utterances sharing a sentence
            and label share one prompt: each is generated once)
  generate  shard JOB of N: greedy replies, appended to OUT/replies.JOB.jsonl after every batch; a rerun
            skips prompts already answered and drops a half-written last line, so nothing is lost or
            duplicated
  merge     write <task> (Kaldi text: utt reply) and <task>_prompt of every data dir and task into
            --targets_dir/<data dir name>/ (the recipe: OUT itself, so dump/raw stays as stage 2 wrote it;
            without --targets_dir, into the data dir) and OUT/meta.yaml (LLM, weights fingerprint, prompts)
"""
import errno
import logging
import sys
from pathlib import Path

from espnet_ext import cli
from espnet_ext.palign.prompts import load_prompt_conf
from espnet_ext.teacher import generate, generation_key, merge, prepare, target_dirs, write_meta

def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("step", choices=["prepare", "generate", "merge"])
    p.add_argument("--out", type=Path, required=True, help="teacher dir (prompts.jsonl, replies.*.jsonl)")
    p.add_argument("--data_dirs", type=Path, nargs="*", default=[])
    p.add_argument("--targets_dir", type=Path, default=None,
                   help="write each data dir's targets to TARGETS_DIR/<its name>/ (default: into the data dir)")
    p.add_argument("--tasks", nargs="+", default=["response", "response_neutral"])
    cli.add_llm_options(p)  # a teacher YAML (--config) sets them
    p.add_argument("--shard", type=int, default=1)
    p.add_argument("--num_shards", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = cli.parse(p, argv)
    try:
        return run(args)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        raise SystemExit(f"teacher_generate {args.step}: {e.strerror} (a full disk?); free space and rerun: what "
                         f"was written is kept") from None


def run(args) -> int:
    cfg = cli.llm_conf(args)
    conf = load_prompt_conf(cfg["prompt_conf"])
    key = generation_key(conf.get("system"), cfg["max_new_tokens"])
    if args.step == "prepare":
        n = prepare(args.data_dirs, args.tasks, conf, args.out, key, target_dirs(args.data_dirs, args.targets_dir))
        logging.info(f"{n} unique teacher prompts in {args.out / 'prompts.jsonl'}")
    elif args.step == "generate":
        generate(args.out, args.shard, args.num_shards, cfg["llm_conf"], conf.get("system"),
                 cfg["batch_size"], cfg["max_new_tokens"], args.device, backend=cfg["backend"],
                 vllm_conf=cfg["vllm_conf"])
    else:
        merge(args.data_dirs, args.tasks, conf, args.out, key, targets=target_dirs(args.data_dirs, args.targets_dir))
        write_meta(args.out, cfg, args.tasks, conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
