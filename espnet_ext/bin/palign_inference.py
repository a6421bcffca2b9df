"""Replies of the frozen LLM to speech, through a trained ParaAlign encoder.

  One file:   python -m espnet_ext.bin.palign_inference --model_dir exp/palign_x --wav a.wav \\
                  [--prompt "What emotion do you hear?"]
  A data dir: python -m espnet_ext.bin.palign_inference --model_dir exp/palign_x --data_dir dump/raw/test \\
                  --output exp/palign_x/decode/test/text
Any sample rate, mono or stereo (down-mixed). The data-dir mode appends after every batch and skips
utterances already in --output, so a killed job resumes without loss or duplicates.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import yaml
from tqdm import tqdm

from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv

FS = 16000


def find_model_file(model_dir: Path) -> Path:
    """The averaged model if training made one, else the best or the last epoch."""
    for name in ("valid.loss.ave.pth", "valid.loss.best.pth", "valid.acc.ave.pth", "latest.pth"):
        if (model_dir / name).exists():
            return model_dir / name
    epochs = sorted(model_dir.glob("*epoch.pth"), key=lambda p: int(p.name.split("epoch")[0]))
    if not epochs:
        raise FileNotFoundError(f"{model_dir}: no model file (*.ave.pth, *.best.pth, *epoch.pth)")
    return epochs[-1]


def load_model(model_dir: Path, model_file: Optional[Path], device: str):
    from espnet_ext.tasks.palign import PalignTask

    from espnet_ext.model_io import ModelFileError, load_state_strict

    model_file = model_file or find_model_file(model_dir)
    logging.info(f"loading {model_file}")
    model, args = PalignTask.build_model_from_file(model_dir / "config.yaml", None, device)  # built, untrained
    try:
        load_state_strict(model, model_file, device)  # tensors only, every key
    except ModelFileError as e:
        raise SystemExit(str(e))
    return model.eval(), args


def user_turn(prompt: Optional[str]) -> Optional[str]:
    """A question asked with the speech: '<speech>' is put in front unless the prompt places it."""
    if prompt is None:
        return None
    return prompt if "<speech>" in prompt else f"<speech>\n{prompt}"


def batch_tensor(waves: List[np.ndarray], device: str):
    lengths = torch.tensor([len(w) for w in waves])
    speech = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        speech[i, : len(w)] = torch.from_numpy(w)
    return speech.to(device), lengths.to(device)


def speaker_means(spk_mean_scp: Optional[Dict[str, str]], keys: List[str], device: str):
    """(B, D) speaker means of these utterances from a spk_mean.scp mapping (stage 5), or None."""
    if spk_mean_scp is None:
        return None
    return torch.from_numpy(np.stack([np.load(spk_mean_scp[k]) for k in keys])).to(device)


def decode_dir(model, data_dir: Path, outputs: Dict[str, Tuple[str, Optional[str]]], batch_size: int,
               max_new_tokens: int, device: str, spk_mean_scp: Optional[Path] = None) -> int:
    """Answer every utterance of ``data_dir``: ``outputs`` maps an output file to (task, user turn). All
    questions are asked of one encoding of each batch. Lines are appended after every batch; a rerun skips
    utterances already in every output file."""
    wav_scp = read_kv(data_dir / "wav.scp")
    spk_mean = read_kv(spk_mean_scp) if spk_mean_scp is not None else None
    if spk_mean is not None and set(wav_scp) - set(spk_mean):
        missing = sorted(set(wav_scp) - set(spk_mean))
        raise SystemExit(f"{spk_mean_scp}: no speaker mean for {len(missing)} utterance(s) of "
                         f"{data_dir / 'wav.scp'}, e.g. '{missing[0]}'")
    done_sets = []
    for out in outputs:
        done = set()
        if Path(out).exists():
            done = {line.split(maxsplit=1)[0] for line in Path(out).read_text(encoding="utf-8").splitlines()
                    if line.strip()}
        done_sets.append(done & set(wav_scp))
    done_all = set.intersection(*done_sets) if done_sets else set()
    todo = [u for u in wav_scp if u not in done_all]
    logging.info(f"{data_dir}: {len(wav_scp)} utterances, {len(done_all)} already decoded, {len(todo)} to go")
    for out, done in zip(outputs, done_sets):  # a partly written file keeps only complete utterances
        if Path(out).exists():
            lines = [ln for ln in Path(out).read_text(encoding="utf-8").splitlines()
                     if ln.strip() and ln.split(maxsplit=1)[0] in done_all]
            Path(out).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    files = {out: open(out, "a", encoding="utf-8") for out in outputs}
    try:
        # Similar lengths in a batch: little padding, and the order does not change any result.
        todo.sort(key=lambda u: Path(wav_scp[u]).stat().st_size if not wav_scp[u].endswith("|") else 0)
        for i in tqdm(range(0, len(todo), batch_size), desc=f"decode {data_dir}", mininterval=10):
            keys = todo[i:i + batch_size]
            waves = []
            for k in keys:
                try:
                    waves.append(load_mono(wav_scp[k], FS))
                except Exception as e:
                    raise SystemExit(f"{data_dir / 'wav.scp'}: utterance '{k}': cannot read audio: {e}")
            speech, lengths = batch_tensor(waves, device)
            means = speaker_means(spk_mean, keys, device)
            answers = model.answer(speech, lengths, dict(outputs), max_new_tokens, means)
            for out, f in files.items():
                for k, r in zip(keys, answers[out]):
                    f.write(f"{k} {r}\n" if r else f"{k}\n")
                f.flush()
    finally:
        for f in files.values():
            f.close()
    for out in outputs:  # sorted, one line per utterance, as Kaldi tools expect
        lines = {ln.split(maxsplit=1)[0]: ln for ln in Path(out).read_text(encoding="utf-8").splitlines() if ln}
        Path(out).write_text("".join(lines[k] + "\n" for k in sorted(lines)), encoding="utf-8")
    return len(todo)


def question(model, train_args, task: str, prompt: Optional[str]) -> Tuple[str, Optional[str]]:
    """(task, user turn) of a question: ``prompt``, the task's trained prompt, or, for a task the model
    was not trained on, its student prompt in the model's prompt config."""
    user = user_turn(prompt)
    if user is None and task not in model.tasks:
        student = train_args.prompt_conf["student"]
        if task not in student:
            raise SystemExit(f"--task {task}: no such student prompt in the model's prompt_conf ({sorted(student)})")
        user = student[task]
    return task, user


def check_inputs(parser, args) -> None:
    """Every path the command names exists and has what it needs (errors name the path)."""
    if not args.model_dir.is_dir():
        parser.error(f"--model_dir {args.model_dir}: no such directory")
    if not (args.model_dir / "config.yaml").is_file():
        parser.error(f"--model_dir {args.model_dir}: no config.yaml (is this a training output dir?)")
    if args.model_file is not None and not args.model_file.is_file():
        parser.error(f"--model_file {args.model_file}: no such file")
    if args.data_dir is not None:
        if args.output is None:
            parser.error("--output is required with --data_dir")
        if not (args.data_dir / "wav.scp").is_file():
            parser.error(f"--data_dir {args.data_dir}: no wav.scp")
    for wav in args.wav or []:
        if not wav.is_file():
            parser.error(f"--wav {wav}: no such file")
        try:
            load_mono(str(wav), FS)
        except Exception as e:
            parser.error(f"--wav {wav}: cannot read audio: {e}")
    if args.spk_mean_scp is not None and not args.spk_mean_scp.is_file():
        parser.error(f"--spk_mean_scp {args.spk_mean_scp}: no such file")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", type=Path, required=True, help="training dir with config.yaml")
    p.add_argument("--model_file", type=Path, default=None, help="default: *.ave.pth, *.best.pth or last epoch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--wav", type=Path, nargs="+", help="audio file(s)")
    g.add_argument("--data_dir", type=Path, help="data dir whose wav.scp is decoded")
    p.add_argument("--output", type=Path, help="Kaldi text file of replies (with --data_dir)")
    p.add_argument("--emotion_output", type=Path, default=None,
                   help="with --data_dir: also ask the 'emotion' task's question of the same encoding, into this file")
    p.add_argument("--spk_mean_scp", type=Path, default=None,
                   help="with --data_dir: each utterance's speaker mean (stage 5), for a speaker_norm model")
    p.add_argument("--prompt", default=None, help='ask something else, e.g. "What emotion do you hear?"')
    p.add_argument("--task", default="response", help="whose student prompt is used when --prompt is not given")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", type=Path, default=None, help="YAML whose keys set the defaults of these options")
    pre, _ = p.parse_known_args(argv)
    if pre.config is not None:
        with open(pre.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        unknown = sorted(set(conf) - {a.dest for a in p._actions})
        if unknown:
            p.error(f"{pre.config}: unknown option(s) {unknown}")
        p.set_defaults(**conf)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    check_inputs(p, args)  # before the model loads: a typo costs no LLM start-up
    model, train_args = load_model(args.model_dir, args.model_file, args.device)
    task, user = question(model, train_args, args.task, args.prompt)
    if args.data_dir:
        if model.speaker_norm and args.spk_mean_scp is None:
            logging.warning("a speaker_norm model without --spk_mean_scp: each utterance is normalised by itself")
        outputs = {str(args.output): (task, user)}
        if args.emotion_output is not None:
            outputs[str(args.emotion_output)] = question(model, train_args, "emotion", None)
        decode_dir(model, args.data_dir, outputs, args.batch_size, args.max_new_tokens, args.device,
                   args.spk_mean_scp)
        return 0
    for wav in args.wav:
        speech, lengths = batch_tensor([load_mono(str(wav), FS)], args.device)  # readable: check_inputs
        reply = model.generate(speech, lengths, task=task, user=user, max_new_tokens=args.max_new_tokens)[0]
        print(reply if len(args.wav) == 1 else f"{wav}\t{reply}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
