"""Shared fixtures: paths into the repository and small Kaldi data dirs made on the fly."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "egs" / "TEMPLATE" / "palign1"
UTILS = TEMPLATE / "utils"


def run(cmd, cwd=None, check=True, env=None, **kw):
    """Run a command, returning CompletedProcess with text output; on failure show its output."""
    # Scripts call "python": make it this interpreter (the venv), activated or not.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = dict(os.environ, PALIGN_SKIP_INSTALL="1", PATH=path, **(env or {}))
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_data_dir(path: Path, utts, fs=16000, emotions=("happy", "sad")):
    """A valid data dir with one short sine-tone WAV per utterance; ``utts`` are (utt, spk) pairs."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "wav").mkdir(exist_ok=True)
    lines = {"wav.scp": [], "text": [], "utt2spk": [], "utt2emo": []}
    for i, (utt, spk) in enumerate(sorted(utts)):
        wav = path / "wav" / f"{utt}.wav"
        t = np.arange(int(0.5 * fs)) / fs
        soundfile.write(str(wav), 0.1 * np.sin(2 * np.pi * (200 + 20 * i) * t), fs)
        lines["wav.scp"].append(f"{utt} {wav}")
        lines["text"].append(f"{utt} hello number {i}")
        lines["utt2spk"].append(f"{utt} {spk}")
        lines["utt2emo"].append(f"{utt} {emotions[i % len(emotions)]}")
    for name, ls in lines.items():
        (path / name).write_text("\n".join(ls) + "\n")
    spk2utt = {}
    for utt, spk in sorted(utts):
        spk2utt.setdefault(spk, []).append(utt)
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(spk2utt.items())))
    return path


@pytest.fixture
def data_dir(tmp_path):
    utts = [(f"spk{s}_utt{i}", f"spk{s}") for s in (1, 2) for i in range(3)]
    return make_data_dir(tmp_path / "data", utts)


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory):
    """A tiny random Llama with a BPE tokenizer and ChatML template, built by the project's own tool."""
    from espnet_ext.bin import prepare_llm

    out = tmp_path_factory.mktemp("llm") / "tiny"
    sentences = ROOT / "egs" / "synth_emo" / "palign1" / "local" / "sentences.txt"
    assert prepare_llm.main(["--source", "tiny", "--out", str(out), "--corpus", str(sentences)]) == 0
    return out


REPLIES = {"happy": "That is wonderful news!", "sad": "I am so sorry to hear that.",
           "angry": "Please calm down, we will fix it.", "neutral": "Thanks for telling me."}


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """synth_emo at a small size, with hand-written emotion-dependent replies as the ``response`` targets."""
    from espnet_ext.datadir import read_kv, write_kv
    from espnet_ext.synth.synth_emo import Design, build

    out = tmp_path_factory.mktemp("corpus")
    design = Design(train_voices=2, valid_voices=1, num_unseen_sentences=4, sentences_per_valid_voice=2,
                    num_test_sentences=2, num_test_unseen_sentences=2, sentences_per_train_voice=3)
    build(ROOT / "egs" / "synth_emo" / "palign1" / "local" / "sentences.txt", out / "data", out / "wav",
          seed=5, design=design, progress=False)
    for split in ("train", "valid", "test"):
        emo = read_kv(out / "data" / split / "utt2emo")
        write_kv(out / "data" / split / "response", {u: REPLIES[e] for u, e in emo.items()})
        (out / "data" / split / "speech_shape").write_text(
            "".join(f"{u} {soundfile.info(p).frames}\n" for u, p in read_kv(out / "data" / split / "wav.scp").items()))
    return out / "data"


@pytest.fixture(scope="session")
def tiny_model(tiny_llm, small_corpus, tmp_path_factory):
    """A tiny model trained for one epoch on small_corpus: its training dir (config.yaml, *.pth)."""
    from espnet_ext.tasks.palign import PalignTask

    exp = tmp_path_factory.mktemp("tiny_model") / "palign"
    PalignTask.main(cmd=tiny_training_cmd(tiny_llm, small_corpus, exp, max_epoch=1))
    return exp


def tiny_training_cmd(llm_dir, corpus: Path, output_dir: Path, max_epoch: int = 2):
    """A whole tiny training command (ESPnet options) on ``corpus``'s train/valid response targets."""
    data = []
    for phase, split in (("train", "train"), ("valid", "valid")):
        data += [f"--{phase}_data_path_and_name_and_type", f"{corpus / split / 'wav.scp'},speech,sound",
                 f"--{phase}_data_path_and_name_and_type", f"{corpus / split / 'response'},response,text",
                 f"--{phase}_shape_file", str(corpus / split / "speech_shape")]
    return tiny_train_args(llm_dir) + data + [
        "--output_dir", str(output_dir), "--max_epoch", str(max_epoch), "--batch_type", "sorted", "--batch_size", "4",
        "--optim", "adam", "--optim_conf", "lr=0.003", "--num_att_plot", "0", "--num_workers", "0",
        "--keep_nbest_models", "2", "--seed", "0"]


def tiny_train_args(llm_dir, **extra):
    """Command-line options of a tiny ParaAlign model (the same keys as the recipes' YAML)."""
    args = ["--llm_conf", f"name_or_path={llm_dir}", "--prompt_conf", str(ROOT / "conf" / "prompts" / "emotion.yaml"),
            "--frontend", "s3prl", "--frontend_conf", "frontend_conf={upstream: fbank}",
            "--normalize", "utterance_mvn", "--encoder", "transformer",
            "--encoder_conf", "output_size=32", "--encoder_conf", "attention_heads=2",
            "--encoder_conf", "linear_units=64", "--encoder_conf", "num_blocks=1",
            "--speech_adapter_conf", "hidden_size=32"]
    for k, v in extra.items():
        args += [f"--{k}", str(v)]
    return args
