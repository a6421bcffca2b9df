"""Stages 8-11: score one system on one test set -> scores.json (``--jobs FILE``: many, in one process).

Reads the system's replies (``--hyp_dir``/text) and, when present, its answers to "What emotion do you
hear?" (``--hyp_dir``/emotion, and ``emotion_alone``: each file decoded without its speaker's statistics),
to "Write down exactly what I said." (``--hyp_dir``/asr: WER against the data dir's text),
pooled speech tokens for the linear probe (``--probe_train`` and ``--probe_test`` .npz) and the judge's
scores (``--hyp_dir``/judge). References come from the test data dir: ``response`` (emotion-conditioned
teacher replies), ``utt2emo``, and ``utt2sentid`` (or ``text``) with ``utt2spk`` to form minimal pairs.

``--jobs FILE`` scores every line of FILE (the options of one call, shell-quoted) in this process: a stage
scores up to 8 systems, and each process would import the similarity model's libraries and load it again
(~5 s on 2 cores).
"""
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from espnet_ext import cli, metrics, systems
from espnet_ext.datadir import read_kv


def pair_groups(ref_dir: Path) -> dict:
    """Utterances of one sentence spoken by one speaker: sentence id (or transcript) + speaker."""
    spk = read_kv(ref_dir / "utt2spk")
    sent = read_kv(ref_dir / "utt2sentid") if (ref_dir / "utt2sentid").exists() else read_kv(ref_dir / "text")
    return {u: f"{spk[u]}|{sent[u].lower().strip()}" for u in spk}


def load_probe(path: Path):
    d = np.load(path, allow_pickle=False)
    return d["x"], [str(y) for y in d["y"]]


def same_utterances(got: dict, got_path: Path, want: dict, want_path: Path) -> dict:
    """A system's output must answer every reference utterance and nothing else: a lost line would
    otherwise count as a wrong answer (or vanish from the mean) without a word."""
    missing = [u for u in want if u not in got]
    extra = [u for u in got if u not in want]
    if missing or extra:
        raise SystemExit(f"{got_path}: {len(missing)} utterance(s) of {want_path} missing"
                         + (f" (e.g. '{missing[0]}')" if missing else "") + f", {len(extra)} not in it"
                         + (f" (e.g. '{extra[0]}')" if extra else "") + "; rerun the stage that wrote it")
    return got


def emotion_words(emo: dict, label_words: dict) -> dict:
    return {label: label_words.get(label, (label,)) for label in sorted(set(emo.values()))}


def mapped_answers(answers_file: Path, labels_file: Path, emo: dict, label_words: dict) -> dict:
    """utt -> the label a free-text emotion answer names (None: none or several)."""
    answers = same_utterances(read_kv(answers_file), answers_file, emo, labels_file)
    words = emotion_words(emo, label_words)
    return {u: metrics.map_emotion(answers.get(u, ""), words) for u in emo}


def emotion_scores(answers_file: Path, labels_file: Path, emo: dict, label_words: dict, prefix: str) -> dict:
    """WA, UAR, macro-F1 (with bootstrap intervals) and the confusion of free-text emotion answers."""
    words = emotion_words(emo, label_words)
    pred = mapped_answers(answers_file, labels_file, emo, label_words)
    cls = metrics.classification_scores(pred, emo, sorted(words))
    out = {f"{prefix}_WA": cls["WA"], f"{prefix}_UAR": cls["UAR"], f"{prefix}_macro_F1": cls["macro_F1"],
           f"{prefix}_unmapped": cls["unmapped"],
           f"{prefix}_confusion": {"labels": cls["labels"] + ["(unmapped)"], "matrix": cls["confusion"]}}
    out.update({f"{prefix}_{k}": v for k, v in metrics.classification_cis(pred, emo, sorted(words)).items()})
    return out


def reply_scores(ref_dir: Path, hyp_dir: Path, targets_dir: Path, label_words: dict, embedder=None) -> dict:
    """The replies against the teacher's: ROUGE, similarity, the emotion they state, sentence match, pairs."""
    refs = read_kv(targets_dir / "response")
    hyps = same_utterances(read_kv(hyp_dir / "text"), hyp_dir / "text", refs, targets_dir / "response")
    emo = read_kv(ref_dir / "utt2emo")
    out = {"num_utts": len(refs)}
    out.update(metrics.rouge(hyps, refs))
    if embedder is not None:
        out["semantic_similarity"] = embedder.similarity(hyps, refs)
        out["semantic_similarity_model"] = embedder.name
    words = emotion_words(emo, label_words)  # does the reply use what was heard? the emotion its opening states
    stated = {u: metrics.reply_emotion(hyps[u], words) for u in emo}
    cls = metrics.classification_scores(stated, emo, sorted(words))
    out.update({"reply_emotion_WA": cls["WA"], "reply_emotion_unmapped": cls["unmapped"],
                "reply_emotion_WA_ci": metrics.classification_cis(stated, emo, sorted(words))["WA_ci"]})
    if (ref_dir / "utt2sentid").exists():  # does the reply follow what was said?
        out.update(metrics.sentence_match(hyps, refs, emo, read_kv(ref_dir / "utt2sentid")))
    pairs = metrics.minimal_pairs(pair_groups(ref_dir), emo)
    out.update(metrics.pair_sensitivity(hyps, refs, pairs))
    if (hyp_dir / "emotion").exists():  # hearing vs replying: the pairs whose two emotions the system names right
        pred = mapped_answers(hyp_dir / "emotion", ref_dir / "utt2emo", emo, label_words)
        heard = metrics.pair_sensitivity(hyps, refs, [(a, b) for a, b in pairs if pred[a] == emo[a] and pred[b] == emo[b]])
        out.update({"pair_sensitivity_heard": heard["pair_sensitivity"] if heard["pairs"] else None,  # none heard
                    "pairs_heard": heard["pairs"], "pair_sensitivity_heard_ci": heard["pair_sensitivity_ci"]})
    return out


def score(ref_dir: Path, hyp_dir: Path, label_words: dict, probe_train=None, probe_test=None,
          embedder=None, targets_dir: Optional[Path] = None, replies: bool = True) -> dict:
    """``targets_dir`` holds the teacher's ``response`` (stage 4's target dir); default ``ref_dir``.
    ``replies=False``: only the answers to the emotion and transcription questions (a set without teacher
    replies, such as another synthesiser's check set)."""
    targets_dir = targets_dir or ref_dir
    needed = [(ref_dir / "utt2emo", "the emotion labels")]
    if replies:
        needed = [(targets_dir / "response", "the teacher's replies: run stage 4"), *needed,
                  (hyp_dir / "text", "the system output: decode first")]
    for path, what in needed:
        if not path.is_file():
            raise SystemExit(f"score: {path} does not exist ({what})")
    emo = read_kv(ref_dir / "utt2emo")
    out = reply_scores(ref_dir, hyp_dir, targets_dir, label_words, embedder) if replies else {"num_utts": len(emo)}
    if (hyp_dir / "asr").exists() and (hyp_dir / "asr").stat().st_size:  # the words, by prompting ("Write down exactly what I said.")
        text = read_kv(ref_dir / "text")
        out.update(metrics.word_error_rate(same_utterances(read_kv(hyp_dir / "asr"), hyp_dir / "asr", text,
                                                           ref_dir / "text"), text))
    for name in ("emotion", "emotion_alone"):  # emotion_alone: each file without its speaker's statistics
        answers = hyp_dir / name
        if answers.exists():
            out.update(emotion_scores(answers, ref_dir / "utt2emo", emo, label_words, prefix=name))
    if probe_train is not None and probe_test is not None:
        xtr, ytr = load_probe(probe_train)
        xte, yte = load_probe(probe_test)
        out.update(metrics.linear_probe(xtr, ytr, xte, yte))
        out["probe_chance"] = metrics.majority_share(yte)
    if (hyp_dir / "judge").exists():
        judged = [float(v) for v in read_kv(hyp_dir / "judge").values() if v not in ("", "nan")]
        out["judge_score"] = float(np.mean(judged)) if judged else float("nan")
        out["judge_parsed"] = len(judged)
    return out


def get_parser():
    p = cli.get_parser(__doc__)
    p.add_argument("--ref_dir", type=Path, required=True, help="test data dir with utt2emo, utt2spk")
    p.add_argument("--targets_dir", type=Path, default=None,
                   help="dir with the teacher's response (stage 4: exp/teacher_*/<set>); default --ref_dir")
    p.add_argument("--hyp_dir", type=Path, required=True, help="dir with text [, emotion, emotion_alone, asr, judge]")
    p.add_argument("--output", type=Path, required=True, help="scores.json")
    p.add_argument("--system", default=None, choices=sorted(systems.NAMES),
                   help="declare what --hyp_dir holds: system.yaml is written beside scores.json (stage 12 reads it)")
    p.add_argument("--model_dir", type=Path, default=None, help="the training dir of a speech system")
    p.add_argument("--teacher_dir", type=Path, default=None, help="stage 4's dir (its meta.yaml names the LLM)")
    p.add_argument("--probe_train", type=Path, default=None)
    p.add_argument("--probe_test", type=Path, default=None)
    p.add_argument("--prompt_conf", type=Path, default=None, help="for the label words of the emotion mapper")
    p.add_argument("--replies", type=cli.str2bool, default=True,
                   help="score the replies against the teacher's (false: a set without teacher replies; only the "
                        "emotion and transcription answers)")
    p.add_argument("--semantic", type=cli.str2bool, default=True, help="the semantic similarity (BERTScore or cosine)")
    p.add_argument("--bertscore_model", default="roberta-large",
                   help="BERTScore model (folder or HF id), used when it is on this machine; else the "
                        "all-MiniLM-L6-v2 cosine; '' for the cosine always")
    p.add_argument("--bertscore_layers", type=int, default=None, help="BERTScore layer (default: bert-score's)")
    p.add_argument("--jobs", type=Path, default=None,
                   help="FILE: run the scorings its lines give (each the options of one call) in this process, "
                        "alone on the command line")
    return p


def run(args, embedders: dict) -> None:
    """One scoring; ``embedders`` keeps the similarity models loaded by earlier ones."""
    label_words = dict(metrics.EMOTION_WORDS)
    if args.prompt_conf is not None:  # corpus labels (neu, hap, ...) -> the words an answer may use
        from espnet_ext.palign.prompts import label_words as words_of, load_prompt_conf

        conf = load_prompt_conf(args.prompt_conf)
        for label in conf.get("labels", {}):
            word = words_of(conf, label)[0]
            label_words[label] = tuple(metrics.EMOTION_WORDS.get(word, (word,)))
    embedder = None
    if args.semantic and args.replies:
        key = (args.bertscore_model, args.bertscore_layers)
        if key not in embedders:
            embedders[key] = metrics.reply_similarity(*key)
        embedder = embedders[key]
    result = score(args.ref_dir, args.hyp_dir, label_words, args.probe_train, args.probe_test, embedder,
                   args.targets_dir, args.replies)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    if args.system is not None:
        systems.write(args.hyp_dir, systems.describe(args.system, args.hyp_dir, args.model_dir, args.teacher_dir))
    logging.info(f"{args.output}: " + ", ".join(f"{k}={v:.3f}" for k, v in result.items() if isinstance(v, float)))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--jobs" not in argv:
        run(cli.parse(get_parser(), argv), {})
        return 0
    if len(argv) != 2 or argv[0] != "--jobs":
        raise SystemExit("score --jobs FILE: nothing else on the command line (each line of FILE holds the "
                         "options of one scoring)")
    jobs = Path(argv[1])
    if not jobs.is_file():
        raise SystemExit(f"score --jobs: {jobs} does not exist")
    lines = [(n, line) for n, line in enumerate(jobs.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    embedders: dict = {}
    for n, line in lines:
        try:
            args = cli.parse(get_parser(), shlex.split(line))
        except (SystemExit, ValueError) as e:  # argparse has printed what is wrong with the options
            raise SystemExit(f"score --jobs: {jobs}:{n}: bad options ({e}): {line}")
        if args.jobs is not None:
            raise SystemExit(f"score --jobs: {jobs}:{n}: --jobs inside a jobs file")
        run(args, embedders)
    logging.info(f"{jobs}: {len(lines)} scorings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
