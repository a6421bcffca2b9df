"""Text-only systems for the baselines: the frozen LLM answers a transcript (oracle or ASR), with an emotion
label (true or predicted by a classifier) written into the prompt or none. ``--description`` rewords how the
label is written ("The user feels sad." for the teacher's "The user sounds sad."): a reference for the pair
metric, which compares replies with the teacher's own.

Writes <out_dir>/text (replies) and <out_dir>/emotion (answers to "What emotion do you hear?"), the same
files a speech system's decode writes, so stage 8 scores both alike. Prompts are the teacher templates of
the prompt config; generation is cached in --cache and resumable like stage 4.
"""
import logging
import shutil
import sys
from pathlib import Path

from espnet_ext import cli, teacher
from espnet_ext.datadir import read_kv, write_kv
from espnet_ext.palign.prompts import label_words, load_prompt_conf


def reworded(conf: dict, description: str) -> dict:
    """The prompt config with every label's description replaced by ``description`` filled with its word."""
    labels = {}
    for label in conf.get("labels") or {}:
        word = label_words(conf, label)[0]
        labels[label] = {"word": word, "description": description.format(emotion=word)}
    return {**conf, "labels": labels}


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--ref_dir", type=Path, required=True, help="test data dir (text, utt2emo)")
    p.add_argument("--out_dir", type=Path, required=True)
    cli.add_llm_options(p)  # the teacher YAML (--config) sets them
    p.add_argument("--cache", type=Path, required=True, help="generation cache dir")
    p.add_argument("--known_replies", type=Path, nargs="*", default=[],
                   help="generation dirs whose replies are reused (stage 4's teacher dir: the same LLM and "
                        "prompts, so the topline, oracle and cascade prompts need no new generation)")
    p.add_argument("--transcripts", type=Path, default=None, help="Kaldi text replacing the oracle transcripts")
    p.add_argument("--labels", type=Path, default=None, help="utt2emo replacing the true labels (predictions)")
    p.add_argument("--with_emotion", type=cli.str2bool, required=True,
                   help="write the (true or --labels) emotion into the prompt")
    p.add_argument("--description", default=None,
                   help="with --with_emotion: write the emotion in these words instead of the prompt config's "
                        "descriptions; {emotion} is the label's word (e.g. 'The user feels {emotion}')")
    p.add_argument("--device", default="cpu")
    args = cli.parse(p, argv)
    cfg = cli.llm_conf(args)
    conf = load_prompt_conf(cfg["prompt_conf"])
    if args.description is not None:
        if not args.with_emotion or "{emotion}" not in args.description:
            raise SystemExit(f"text_system: --description needs --with_emotion true and an {{emotion}} "
                             f"placeholder, got '{args.description}'")
        conf = reworded(conf, args.description)

    view = args.out_dir / "view"  # the test set as this system sees it
    view.mkdir(parents=True, exist_ok=True)
    for name in ("text", "utt2emo", "utt2spk"):
        shutil.copy(args.ref_dir / name, view / name)
    ref = read_kv(args.ref_dir / "utt2spk")
    for src, name in ((args.transcripts, "text"), (args.labels, "utt2emo")):
        if src is not None:
            kv = read_kv(src)
            missing = [u for u in ref if u not in kv]
            if missing:
                raise SystemExit(f"{src}: no entry for utterance '{missing[0]}' ({len(missing)} missing)")
            write_kv(view / name, {u: kv[u] for u in ref})
    reply_task, emotion_task = (("response", "emotion") if args.with_emotion
                                else ("response_neutral", "emotion_neutral"))
    tasks = [reply_task, emotion_task]
    key = teacher.generation_key(conf.get("system"), cfg["max_new_tokens"])
    teacher.prepare([view], tasks, conf, args.cache, key)
    teacher.generate(args.cache, 1, 1, cfg["llm_conf"], conf.get("system"), cfg["batch_size"],
                     cfg["max_new_tokens"], args.device, args.known_replies, backend=cfg["backend"],
                     vllm_conf=cfg["vllm_conf"])
    teacher.merge([view], tasks, conf, args.cache, key, args.known_replies)
    shutil.copy(view / reply_task, args.out_dir / "text")
    shutil.copy(view / emotion_task, args.out_dir / "emotion")
    logging.info(f"{args.out_dir}: replies and emotion answers for {len(ref)} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
