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
