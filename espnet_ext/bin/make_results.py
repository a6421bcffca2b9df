"""Stage 12: RESULTS.md from the systems declared under the experiment dir (each test set's outputs carry a
``system.yaml`` beside ``scores.json``: see espnet_ext/systems.py), with plots next to it.
"""
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from espnet_ext import cli, yaml_file
from espnet_ext import systems as systems_lib

COLUMNS = [  # (key in scores.json, header, format)
    ("train_steps", "Train steps", "{:d}"), ("prealign_steps", "Of them semantic", "{:d}"),
    ("pretrain_steps", "Pre-train steps", "{:d}"),
    ("rouge1", "ROUGE-1", "{:.3f}"), ("rougeL", "ROUGE-L", "{:.3f}"), ("semantic_similarity", "Sem. sim.", "{:.3f}"),
    ("emotion_WA", "Emo WA [95% CI]", "{:.3f}"), ("emotion_alone_WA", "Emo WA, file alone [95% CI]", "{:.3f}"),
    ("emotion_UAR", "Emo UAR", "{:.3f}"),
    ("emotion_macro_F1", "Emo macro-F1", "{:.3f}"),
    ("pair_sensitivity", "Pair sens. [95% CI]", "{:.3f}"),
    ("reply_emotion_WA", "Reply emo [95% CI]", "{:.3f}"),
    ("wer", "WER by prompting [95% CI]", "{:.3f}"), ("sentence_match", "Sent. match [95% CI]", "{:.3f}"),
    ("probe_acc", "Probe acc", "{:.3f}"),
    ("judge_score", "Judge (1-10)", "{:.2f}"),
]


# the columns shown with their interval (scores.json has more)
WITH_CI = ("emotion_WA", "emotion_alone_WA", "pair_sensitivity", "reply_emotion_WA", "wer", "sentence_match")


def cell(scores: dict, key: str, fmt: str) -> str:
    """A number, with its bootstrap interval for the WITH_CI columns; '–' if absent."""
    v = scores.get(key)
    if not isinstance(v, (int, float)) or v != v:
        return "–"
    ci = scores.get(f"{key}_ci")
    if key in WITH_CI and isinstance(ci, (list, tuple)) and len(ci) == 2 and all(x == x for x in ci):
        return f"{fmt.format(v)} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return fmt.format(v)


def table(systems, dset: str) -> List[str]:
    lines = ["| System | " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name in sorted(systems, key=lambda n: systems_lib.order(n, systems)):
        if dset not in systems[name]:
            continue
        s = systems[name][dset][1]
        cells = [cell(s, k, fmt) for k, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


ABLATION_COLUMNS = [("emotion_WA", "Emo WA"), ("emotion_alone_WA", "Emo WA, file alone"),
                    ("pair_sensitivity", "Pair sens."), ("reply_emotion_WA", "Reply emo"), ("rougeL", "ROUGE-L"),
                    ("wer", "WER"), ("sentence_match", "Sent. match"), ("probe_acc", "Probe acc")]


def ablation_runs(abl_dir: Path, test_sets: List[str]) -> Dict[str, List[dict]]:
    """variant -> one dict per seed: {"seed", "steps", "wall", dset: scores} from ``abl_dir/<variant>_seed<N>``."""
    runs: Dict[str, List[dict]] = {}
    for d in sorted(abl_dir.glob("*_seed*")):
        variant, _, seed = d.name.rpartition("_seed")
        found = systems_lib.read_all(d, test_sets)
        if not found or not seed.isdigit():
            continue
        per_set = next(iter(found.values()))  # one speech system per run
        wall = d / "wall_seconds"
        run = {"seed": int(seed), "wall": int(wall.read_text()) if wall.exists() else None,
               "steps": next(iter(per_set.values()))[1].get("train_steps")}
        run.update({dset: scores for dset, (_, scores) in per_set.items()})
        runs.setdefault(variant, []).append(run)
    return runs


def ablation_cell(runs: List[dict], dset: str, key: str) -> str:
    """One seed: the value with its bootstrap interval where there is one; several: mean ± std over seeds."""
    vals = [r[dset][key] for r in runs if dset in r and isinstance(r[dset].get(key), (int, float))]
    if not vals:
        return "–"
    if len(vals) == 1:
        return cell(runs[0][dset], key, "{:.3f}") if key in WITH_CI else f"{vals[0]:.3f}"
    mean = sum(vals) / len(vals)
    std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
    return f"{mean:.3f} ± {std:.3f}"


def flat(conf, prefix: str = "") -> Dict[str, object]:
    """A nested config as {"a.b": value} (lists are values)."""
    if not isinstance(conf, dict):
        return {prefix: conf}
    out: Dict[str, object] = {}
    for k, v in conf.items():
        out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` replaced in, nested dicts merged."""
    return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                       for k, v in changes.items()}}


def variant_config(base: dict, changes: Optional[dict]) -> Tuple[dict, str]:
    """An ablation variant (local/run_ablations.sh): the training config with its changes, and the target it
    is aligned to (``palign_target``: palign.sh's option, not the config's; default the reply)."""
    changes = dict(changes or {})
    target = changes.pop("palign_target", "response")
    return merge(base, changes), target


def config_drift(abl_dir: Path, changes: Dict[str, dict], main_config: Optional[Path]) -> str:
    """A sentence naming the rows trained on another main config than this run's (each variant's config as
    trained, ``abl_dir/conf/<variant>.yaml``, against this run's config with the variant's changes) and the
    keys where they differ; empty when every row agrees."""
    if main_config is None or not main_config.exists():
        return ""
    now_main = yaml_file.load(main_config) or {}
    groups: Dict[str, List[str]] = {}
    for variant, change in changes.items():
        trained = abl_dir / "conf" / f"{variant}.yaml"
        if not trained.exists():
            continue
        then, now = flat(yaml_file.load(trained) or {}), flat(variant_config(now_main, change)[0])
        diff = "; ".join(f"`{k}`: `{then.get(k, '(unset)')}` there, `{now.get(k, '(unset)')}` here"
                         for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k))
        if diff:
            groups.setdefault(diff, []).append(variant)
    return "".join(f" Trained on an earlier main config, which differs from this run's `{main_config}` in {diff}: "
                   f"{', '.join(f'`{v}`' for v in vs)}." for diff, vs in groups.items())


def escape_newlines(value):
    """Strings of a config with their line breaks written as \\n, so that it prints on one table row."""
    if isinstance(value, dict):
        return {k: escape_newlines(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_newlines(v) for v in value]
    return value.replace("\n", "\\n") if isinstance(value, str) else value


def ablation_section(abl_dir: Path, test_sets: List[str], main_config: Optional[Path] = None) -> List[str]:
    """The "Ablations" section: every variant of local/run_ablations.sh with every metric per test set."""
    runs = ablation_runs(abl_dir, test_sets)
    if not runs:
        return []
    variants_file = abl_dir / "variants.yaml"
    changes = yaml_file.load(variants_file) if variants_file.exists() else {}
    order = [v for v in changes if v in runs] + sorted(v for v in runs if v not in changes)
    lines = ["", "## Ablations", "",
             "Produced by `local/run_ablations.sh` on this run's data and teacher targets: each variant is the main "
             "training config with the keys shown replaced, trained for the same steps. One seed: the value "
             "[95% bootstrap CI]; several seeds: mean ± std over seeds. Wall: training, decoding and scoring. "
             "Without a `main` row, compare with the ParaAlign row above (the main config, seed 0). File alone: "
             "only for speaker-normalised variants." + config_drift(abl_dir, {v: changes.get(v) for v in order},
                                                                    main_config)]
    note = abl_dir / "NOTE.md"  # written by whoever assembled the runs, e.g. where they came from
    if note.exists() and note.read_text().strip():
        lines += ["", note.read_text().strip()]
    for dset in test_sets:
        head = " | ".join(h for _, h in ABLATION_COLUMNS)
        lines += ["", f"### {dset}", "", f"| Variant | Changes | Seeds | Train steps | Wall (s, mean) | {head} |",
                  "|---" * (5 + len(ABLATION_COLUMNS)) + "|"]
        for v in order:
            rs = sorted(runs[v], key=lambda r: r["seed"])
            change = yaml.safe_dump(escape_newlines(changes.get(v) or {}), default_flow_style=True,
                                    width=10 ** 6).strip()
            change = "(none)" if change == "{}" else change.replace("|", "\\|")
            walls = [r["wall"] for r in rs if r["wall"] is not None]
            steps = {r["steps"] for r in rs}
            cells = [ablation_cell(rs, dset, k) for k, _ in ABLATION_COLUMNS]
            lines.append(f"| {v} | `{change}` | {','.join(str(r['seed']) for r in rs)} | "
                         f"{'/'.join(str(x) for x in sorted(steps, key=str))} | "
                         f"{round(sum(walls) / len(walls)) if walls else '–'} | " + " | ".join(cells) + " |")
    return lines


def train_curves(expdir: Path) -> Dict[str, Dict[str, List[float]]]:
    """Per ParaAlign experiment: train/valid loss per epoch, from ESPnet's train.log."""
    curves = {}
    pat = re.compile(r"(\d+)epoch results: \[train\].*?\bloss=([\d.]+).*?\[valid\].*?\bloss=([\d.]+)")
    for log in sorted(expdir.glob("palign_*/train.log")):
        rows = [pat.search(line) for line in log.read_text(errors="replace").splitlines()]
        rows = [r for r in rows if r]
        if rows:
            curves[log.parent.name] = {"epoch": [int(r.group(1)) for r in rows],
                                       "train": [float(r.group(2)) for r in rows],
                                       "valid": [float(r.group(3)) for r in rows]}
    return curves


def plots(systems, curves, test_sets: List[str], out_dir: Path) -> Dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, c in curves.items():
            ax.plot(c["epoch"], c["train"], "o--", label=f"{name} train")
            ax.plot(c["epoch"], c["valid"], "o-", label=f"{name} valid")
        ax.set_xlabel("epoch"), ax.set_ylabel("cross-entropy"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
        fig.tight_layout(), fig.savefig(out_dir / "train_curves.png", dpi=110), plt.close(fig)
        made["curves"] = "train_curves.png"
    for dset in test_sets:
        main = [n for n in systems if dset in systems[n] and systems[n][dset][1].get("_kind") == "paraalign"]
        if main and "emotion_confusion" in systems[main[0]][dset][1]:
            conf = systems[main[0]][dset][1]["emotion_confusion"]
            m = np.array(conf["matrix"])
            fig, ax = plt.subplots(figsize=(4.5, 3.8))
            ax.imshow(m, cmap="Blues")
            ax.set_xticks(range(m.shape[1]), conf["labels"], rotation=45, ha="right")
            ax.set_yticks(range(m.shape[0]), conf["labels"][: m.shape[0]])
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8)
            ax.set_xlabel("answer (mapped)"), ax.set_ylabel("true emotion"), ax.set_title(f"{main[0]}: {dset}", fontsize=8)
            fig.tight_layout(), fig.savefig(out_dir / f"confusion_{dset}.png", dpi=110), plt.close(fig)
            made[f"confusion_{dset}"] = f"confusion_{dset}.png"
        with_emo = [n for n in sorted(systems, key=lambda n: systems_lib.order(n, systems))
                    if dset in systems[n] and "emotion_confusion" in systems[n][dset][1]]
        if with_emo:
            labels = systems[with_emo[0]][dset][1]["emotion_confusion"]["labels"][:-1]
            fig, ax = plt.subplots(figsize=(7, 3.5))
            width = 0.8 / len(with_emo)
            for k, name in enumerate(with_emo):
                m = np.array(systems[name][dset][1]["emotion_confusion"]["matrix"])
                recall = [m[i, i] / max(1, m[i].sum()) for i in range(len(labels))]
                ax.bar(np.arange(len(labels)) + k * width, recall, width, label=name)
            ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels)
            ax.set_ylabel("recall (emotion by prompting)"), ax.set_ylim(0, 1), ax.legend(fontsize=6)
            fig.tight_layout(), fig.savefig(out_dir / f"per_emotion_{dset}.png", dpi=110), plt.close(fig)
            made[f"per_emotion_{dset}"] = f"per_emotion_{dset}.png"
    return made


def timeline(expdir: Path) -> List[str]:
    """Time spent per stage, summed over every run logged in the stage_times file palign.sh appends to
    (stage 10 trains, decodes and scores the semantic-only model: its time is counted under stage 10)."""
    path = expdir / "stage_times"
    if not path.exists():
        return []
    events = [line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]
    spent: Dict[str, float] = {}
    for (t0, name), (t1, _) in zip(events, events[1:]):
        if name != "Finished":
            spent[name] = spent.get(name, 0.0) + float(t1) - float(t0)
    if not spent:
        return []
    rows = ["| stage | seconds |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in
                                                    sorted(spent.items(), key=lambda kv: int(kv[0].split()[1]))]
    return rows + [f"| total | {sum(spent.values()):.0f} |"]


def judge_verdict(expdir: Path) -> str:
    """What the judge's calibration on the valid set said (stage 8 runs it before any judging)."""
    path = expdir / "judge" / "calibration.json"
    if not path.exists():
        return "Not calibrated: no judge scores."
    v = json.loads(path.read_text())
    if not v.get("utterances"):
        detail = "no answer of the judge held a score from 1 to 10 on the valid set"
    else:
        of = f" of {v['of']}" if "of" in v else ""
        sign = f", sign test p = {v['sign_test_p']:.2g}" if "sign_test_p" in v else ""
        detail = (f"mean score of the teacher's replies {v['teacher_mean']:.2f} vs transcript-only replies "
                  f"{v['text_only_mean']:.2f} on the {v['utterances']}{of} valid utterances where both answers "
                  f"held a score ({v['teacher_wins']} wins, {v['teacher_losses']} losses{sign})")
    if v.get("passed"):
        return f"It passed its calibration: {detail}."
    return (f"**Failed calibration**: it does not reliably rank the teacher's replies above transcript-only "
            f"replies (needed: scores on at least half of the utterances, a higher mean, sign test p <= 0.05; "
            f"{detail}), so its scores are not shown.")


def run_commits(expdir: Path) -> List[str]:
    """The commits palign.sh ran at in this exp dir (exp/run_history.sh), oldest first, each once."""
    history = expdir / "run_history.sh"
    found = re.findall(r"^# \S+ commit (\S+)$", history.read_text(), re.M) if history.exists() else []
    return list(dict.fromkeys(found))


def environment(expdir: Optional[Path] = None) -> List[str]:
    import espnet
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except OSError:
        commit = "?"
    runs = run_commits(expdir) if expdir is not None else []
    if runs and runs != [commit]:
        commit = f"{commit or '?'} (this report); the stages in this exp dir ran at {', '.join(runs)} (exp/run_history.sh)"
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"- ParaAlign commit: {commit or '?'}",
            f"- python {platform.python_version()}, torch {torch.__version__}, espnet {espnet.__version__}, "
            f"transformers {transformers.__version__}",
            f"- machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, GPU: {gpu}"]


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--expdir", type=Path, required=True)
    p.add_argument("--test_sets", nargs="+", required=True)
    p.add_argument("--output", type=Path, default=Path("RESULTS.md"))
    p.add_argument("--configs", type=Path, nargs="*", default=[])
    p.add_argument("--judge_config", type=Path, default=None)
    p.add_argument("--notes", type=Path, default=None, help="markdown inserted after the tables (e.g. run time)")
    p.add_argument("--ablations_dir", type=Path, default=None,
                   help="local/run_ablations.sh's runs: an Ablations section, and kept out of the main tables")
    args = cli.parse(p, argv)
    systems = systems_lib.read_all(args.expdir, args.test_sets, exclude=args.ablations_dir)
    if not systems:
        raise SystemExit(f"no system.yaml with its scores.json under {args.expdir} for {args.test_sets}: "
                         f"run stage 8 first")
    img_dir = args.output.parent / "images"
    made = plots(systems, train_curves(args.expdir), args.test_sets, img_dir)
    any_scores = next(iter(next(iter(systems.values())).values()))[1]
    lines = ["<!-- Generated by espnet_ext.bin.make_results (stage 12); do not edit by hand. -->",
             "# RESULTS", "", "## Environments", *environment(args.expdir), "", "## Configs"]
    for c in args.configs:
        lines.append(f"- `{c}`")
        if c.exists():
            conf = yaml_file.load(c) or {}
            llm = (conf.get("llm_conf") or {}).get("name_or_path")
            fe = ((conf.get("frontend_conf") or {}).get("frontend_conf") or {}).get("upstream") or conf.get("frontend")
            bits = [f"LLM `{llm}`" if llm else "", f"frontend `{fe}`" if fe else "",
                    f"encoder `{conf.get('encoder')}`" if conf.get("encoder") else ""]
            if any(bits):
                lines[-1] += ": " + ", ".join(b for b in bits if b)
    lines += ["", "## Metrics",
              "- ROUGE-1/L and semantic similarity: generated replies vs. the emotion-conditioned teacher replies "
              f"(similarity: {any_scores.get('semantic_similarity_model', 'not computed')}).",
              "- Emo WA/UAR: the LLM asked \"What emotion do you hear?\"; free-text answers mapped to labels "
              "(unmapped answers count as wrong). Emo WA, file alone: the same question with each test file "
              "decoded without its speaker's statistics (what the demo and `palign_inference --wav` see); "
              "models with `speaker_norm` only.",
              "- Pair sens.: share of minimal pairs (same sentence and voice, two emotions) whose two replies are "
              "each closer (ROUGE-L) to their own teacher reply than to the other's.",
              "- Reply emo: the emotion the reply's opening states (the system prompt asks the LLM to say first how "
              "the user feels), mapped as the emotion answers are: does the reply use what was heard?",
              "- WER by prompting: the LLM asked \"Write down exactly what I said.\" (zero-shot for a model not "
              "trained on the asr task); word edit distance over reference words, both lower-cased, punctuation "
              "dropped except inner apostrophes. For the Whisper cascades: the transcript they read.",
              "- Sent. match: among the teacher replies of the utterance's own emotion, the one closest (ROUGE-L) to "
              "the reply answers the same sentence (`utt2sentid`); chance is 1 / the number of sentences.",
              "- Probe acc: logistic regression on mean-pooled speech tokens (train -> test); speech systems only.",
              "- Train steps: optimizer updates of the speech encoder behind the decoded model (text systems: none); "
              "Of them semantic: the first of them, a semantic pre-alignment (`prealign_conf`: the semantic-only "
              "model's first steps, aligned to the replies to the bare transcript, from which the emotion alignment "
              "starts); Pre-train steps: those of stage 6's encoder pre-training before it, without the LLM (CTC on the "
              "transcript, the emotion classifier where the system has one).",
              "- Judge: an LLM rates 1-10 how well a reply shows the speaker's emotion was understood."]
    lines += ["- [95% CI]: percentile bootstrap over utterances (WA, WER, sentence match) or minimal pairs (pair sens.), 1000 "
              "resamples, fixed seed."]
    if args.judge_config and args.judge_config.exists():
        jc = yaml_file.load(args.judge_config)
        lines.append(f"  Judge model: `{jc['llm_conf']['name_or_path']}`. " + judge_verdict(args.expdir))
    for dset in args.test_sets:
        lines += ["", f"## {dset}", "", *table(systems, dset)]
        for key in (f"confusion_{dset}", f"per_emotion_{dset}"):
            if key in made:
                lines += ["", f"![{key}](images/{made[key]})"]
    if args.ablations_dir is not None and args.ablations_dir.is_dir():
        lines += ablation_section(args.ablations_dir, args.test_sets, args.configs[0] if args.configs else None)
    if "curves" in made:
        lines += ["", "## Training curves", "", "![training curves](images/train_curves.png)"]
    times = timeline(args.expdir)
    if times:
        lines += ["", "## Run time per stage (wall clock, summed over the runs in this exp dir)", "", *times]
    if args.notes and args.notes.exists():
        lines += ["", args.notes.read_text().strip()]
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output} ({len(systems)} systems, {len(args.test_sets)} test sets, {len(made)} plots)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
