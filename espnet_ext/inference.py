"""Decoding with a trained ParaAlign model: load it (tensors only, strictly), read a data dir's audio as
training does, batch it, answer questions about each utterance with resumable appends. Used by bin/palign_inference.py (stage 7),
bin/pooled_tokens.py (the probe's features) and bin/cls_predict.py (the model-file lookup)."""
import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from tqdm import tqdm

from espnet_ext import yaml_file
from espnet_ext.datadir import read_kv
from espnet_ext.palign.prompts import reads_text

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


# Paths that training writes into config.yaml as given, relative to the recipe dir it ran in.
PATH_KEYS = (("llm_conf", "name_or_path"), ("normalize_conf", "stats_file"),
             ("frontend_conf", "frontend_conf", "path_or_url"), ("frontend_conf", "model"), ("teacher_meta",))


def read_model_config(model_dir: Path) -> dict:
    """A training dir's config.yaml with its relative paths made absolute, so that a model dir works from any
    directory: a path that does not exist from here is looked up from model_dir and each dir above it (the
    recipe dir, where training ran). A local path found nowhere is an error that names the key; a name that
    can be a hub id (one '/') and the optional teacher_meta are left as they are."""
    path = Path(model_dir) / "config.yaml"
    conf = yaml_file.load(path)
    if not isinstance(conf, dict):
        raise SystemExit(f"{path}: not a training config (a YAML mapping of options)")
    here = Path(model_dir).resolve()
    for keys in PATH_KEYS:
        parent, value = conf, None
        for k in keys[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            value = parent.get(keys[-1])
        if (not isinstance(value, str) or not value or "://" in value or Path(value).expanduser().exists()
                or keys == ("teacher_meta",)):
            continue
        if Path(value).expanduser().is_absolute():
            raise SystemExit(f"{path}: {'.'.join(keys)} is '{value}', which does not exist (moved or deleted?); "
                             f"put it back, or write its new place into config.yaml")
        found = next((base / value for base in (here, *here.parents) if (base / value).exists()), None)
        if found is not None:
            parent[keys[-1]] = str(found)
        elif keys[-1] == "stats_file" or value.startswith(".") or value.count("/") > 1:  # else a hub/model name
            raise SystemExit(f"{path}: {'.'.join(keys)} is '{value}', which exists neither from here ({Path.cwd()}) "
                             f"nor from {here} or any dir above it: training wrote it relative to the dir it ran "
                             f"in; run from that dir, or put the absolute path into config.yaml")
    return conf


def load_model(model_dir: Path, model_file: Optional[Path], device: str):
    """The model of a training dir, on ``device``: built from config.yaml (read_model_config), then loaded
    from the model file, tensors only, every key checked."""
    from espnet_ext.model_io import ModelFileError, load_state_strict
    from espnet_ext.tasks.palign import PalignTask

    model_file = model_file or find_model_file(model_dir)
    logging.info(f"loading {model_file}")
    args = argparse.Namespace(**read_model_config(model_dir))
    try:
        model = PalignTask.build_model(args).to(device)  # built, untrained
    except SystemExit as e:  # an option the config has wrong: name the file it is in
        raise SystemExit(f"{Path(model_dir) / 'config.yaml'}: {e}") from None
    try:
        load_state_strict(model, model_file, device)  # tensors only, every key
    except ModelFileError as e:
        raise SystemExit(str(e))
    return model.eval(), args


def check_device(device: str) -> None:
    """A device this machine has: an error naming --device instead of torch's deep in the model build."""
    import re

    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if device != "cpu" and m is None:
        raise SystemExit(f"--device {device}: give cpu, cuda or cuda:N")
    if m is not None:
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: this machine has no CUDA GPU that torch can use; give --device cpu")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            raise SystemExit(f"--device {device}: there are {torch.cuda.device_count()} GPUs (cuda:0 .. "
                             f"cuda:{torch.cuda.device_count() - 1})")


MAX_SECONDS = 60.0  # the default limit of one recording: memory grows with length (5 min: 3.7 GB on CPU)


@torch.no_grad()
def min_speech_samples(model) -> int:
    """The fewest samples (at 16 kHz) the model turns into at least one speech token: the frontend's window,
    the encoder's subsampling and the adapter's stacking decide it, so it is found by trying (bisection)."""
    if getattr(model, "_min_speech_samples", None):
        return model._min_speech_samples
    device = next(model.parameters()).device

    def encodes(n: int) -> bool:
        x = 0.1 * torch.sin(torch.arange(n, device=device) * 0.1).unsqueeze(0)
        try:
            return int(model.encode(x, torch.tensor([n], device=device))[1][0]) >= 1
        except Exception:  # noqa: BLE001 - espnet's TooShortUttError, a frontend window longer than the input
            return False

    lo, hi = 1, FS
    while not encodes(hi):  # longer than 1 s is a model that needs much context (any real one encodes 1 s)
        lo, hi = hi, hi * 2
        if hi > 64 * FS:
            model.encode(torch.zeros(1, hi, device=device), torch.tensor([hi], device=device))  # its own error
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if encodes(mid) else (mid + 1, hi)
    model._min_speech_samples = hi
    return hi


def duration_problem(n_samples: int, min_samples: int, max_seconds: float) -> Optional[str]:
    """Why a recording of ``n_samples`` at 16 kHz cannot be answered, or None."""
    if n_samples < min_samples:
        return (f"{n_samples / FS:.2f} s long; this model needs at least {min_samples / FS:.2f} s of audio to make "
                f"one speech token")
    if n_samples > max_seconds * FS:
        return (f"{n_samples / FS:.1f} s long, more than the limit of {max_seconds:g} s (memory grows with length): "
                f"cut it into shorter segments, or raise --max_seconds")
    return None


class SpeechReader:
    """A data dir's audio read as training reads it: ESPnet's ``sound`` loader (ESPnetDataset) and the
    task's preprocessor (mono mix, float32), so a decoded utterance is the tensor training would see.
    ``fs``: the rate every file must have (stage 2 writes 16 kHz); None skips the check."""

    def __init__(self, data_dir: Path, train_args, fs: Optional[int] = FS):
        from espnet2.train.dataset import ESPnetDataset

        from espnet_ext.tasks.palign import PalignTask

        self.wav_scp = Path(data_dir) / "wav.scp"
        self.fs = fs
        preprocess = PalignTask.build_preprocess_fn(train_args, train=False)
        self.dataset = ESPnetDataset([(str(self.wav_scp), "speech", "sound")], preprocess=preprocess)

    def __call__(self, utt: str) -> np.ndarray:
        try:
            _, data = self.dataset[utt]
        except Exception as e:  # noqa: BLE001 - any reader failure names the utterance
            raise SystemExit(f"{self.wav_scp}: utterance '{utt}': cannot read audio: {e}")
        rate = self.dataset.loader_dict["speech"].rate
        if self.fs is not None and rate != self.fs:
            raise SystemExit(f"{self.wav_scp}: utterance '{utt}' is at {rate} Hz, the model takes {self.fs} Hz: "
                             f"decode a data dir formatted by stage 2 (dump/raw), or a file with --wav")
        return np.asarray(data["speech"], dtype=np.float32)


def user_turn(prompt: Optional[str]) -> Optional[str]:
    """A question asked with the speech: '<speech>' is put in front unless the prompt places it."""
    if prompt is None:
        return None
    if prompt.count("<speech>") > 1:
        raise SystemExit(f"--prompt {prompt!r}: '<speech>' marks where the one recording goes; give it once (or "
                         f"leave it out: it is put in front)")
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


Questions = Dict[str, Tuple[str, Optional[str]]]


def reads_transcript(model, questions: Questions) -> bool:
    """Does any of these questions give the LLM the transcript beside the speech ({text} in its turn)?"""
    return any(reads_text(user if user is not None else model.student_prompts.get(task, ""))
               for task, user in questions.values())


def read_transcripts(path: Path, keys: List[str]) -> Dict[str, str]:
    """utterance -> transcript of a Kaldi text file; every key must have one (the error names the first missing)."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such transcript file (the model's prompt reads the transcript, {{text}})")
    text = read_kv(path)
    missing = [k for k in keys if not text.get(k, "").strip()]
    if missing:
        raise SystemExit(f"{path}: no transcript for {len(missing)} utterance(s), e.g. '{missing[0]}'")
    return text


def decode_dir(model, train_args, data_dir: Path, outputs: Questions, batch_size: int, max_new_tokens: int,
               device: str, spk_mean_scp: Optional[Path] = None, alone_outputs: Optional[Questions] = None,
               transcripts: Optional[Path] = None, max_seconds: float = MAX_SECONDS) -> int:
    """Answer every utterance of ``data_dir``: ``outputs`` maps an output file to (task, user turn). All
    questions are asked of one encoding of each batch (with the speaker means of ``spk_mean_scp``);
    ``alone_outputs``' of a second encoding without them (each file alone). Audio is read as training reads it
    (SpeechReader). A prompt that reads the transcript takes it from ``transcripts`` (a Kaldi text file;
    default the data dir's own ``text``). Lines are appended after every batch; a rerun skips utterances
    already in every output. An utterance too short for one speech token or longer than ``max_seconds`` stops
    the run naming it (what was decoded before it is kept)."""
    alone_outputs = alone_outputs or {}
    wav_scp = read_kv(data_dir / "wav.scp")
    texts = None
    if reads_transcript(model, {**outputs, **alone_outputs}):
        transcripts = transcripts or data_dir / "text"
        texts = read_transcripts(transcripts, list(wav_scp))
        logging.info(f"the prompt reads the transcript: from {transcripts}")
    read = SpeechReader(data_dir, train_args)
    spk_mean = read_kv(spk_mean_scp) if spk_mean_scp is not None else None
    if spk_mean is not None and set(wav_scp) - set(spk_mean):
        missing = sorted(set(wav_scp) - set(spk_mean))
        raise SystemExit(f"{spk_mean_scp}: no speaker mean for {len(missing)} utterance(s) of "
                         f"{data_dir / 'wav.scp'}, e.g. '{missing[0]}'")
    done_sets, every_output = [], {**outputs, **alone_outputs}
    for out in every_output:
        done = set()
        if Path(out).exists():
            done = {line.split(maxsplit=1)[0] for line in Path(out).read_text(encoding="utf-8").splitlines()
                    if line.strip()}
        done_sets.append(done & set(wav_scp))
    done_all = set.intersection(*done_sets) if done_sets else set()
    todo = [u for u in wav_scp if u not in done_all]
    logging.info(f"{data_dir}: {len(wav_scp)} utterances, {len(done_all)} already decoded, {len(todo)} to go")
    for out, done in zip(every_output, done_sets):  # a partly written file keeps only complete utterances
        if Path(out).exists():
            lines = [ln for ln in Path(out).read_text(encoding="utf-8").splitlines()
                     if ln.strip() and ln.split(maxsplit=1)[0] in done_all]
            Path(out).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    min_samples = min_speech_samples(model)
    files = {out: open(out, "a", encoding="utf-8") for out in every_output}
    try:
        # Similar lengths in a batch: little padding, and the order does not change any result.
        todo.sort(key=lambda u: Path(wav_scp[u]).stat().st_size if not wav_scp[u].endswith("|") else 0)
        for i in tqdm(range(0, len(todo), batch_size), desc=f"decode {data_dir}", mininterval=10):
            keys = todo[i:i + batch_size]
            waves = [read(k) for k in keys]
            for k, w in zip(keys, waves):
                problem = duration_problem(len(w), min_samples, max_seconds)
                if problem:
                    raise SystemExit(f"{data_dir / 'wav.scp'}: utterance '{k}' is {problem} (or leave it out of the "
                                     f"data dir: utils/subset_data_dir.sh)")
            speech, lengths = batch_tensor(waves, device)
            means = speaker_means(spk_mean, keys, device)
            answers = model.answer(speech, lengths, dict(outputs), max_new_tokens, means,
                                   alone_questions=dict(alone_outputs),
                                   texts=[texts[k] for k in keys] if texts is not None else None)
            for out, f in files.items():
                for k, r in zip(keys, answers[out]):
                    f.write(f"{k} {r}\n" if r else f"{k}\n")
                f.flush()
    finally:
        for f in files.values():
            f.close()
    for out in every_output:  # sorted, one line per utterance, as Kaldi tools expect
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
