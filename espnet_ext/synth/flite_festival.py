"""Speech from Debian's command-line synthesisers, CMU Flite (apt ``flite``) and Festival's diphone voice
(apt ``festival festvox-kallpc16k``), in synth_emo's four emotions: a second training synthesiser
(``Design.flite_train_voices``) and the check sets of ``egs/synth_emo/palign1/local/make_check_set.py``.

Neither synthesiser has emotions; each is portrayed by changing the voice's F0 mean and spread, duration and
level by the factors measured on synth_emo's train split (mean over 12 espeak-ng voices, relative to each
voice's neutral): the same portrayal conventions as espeak-ng's, on another synthesiser and other voices.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

# emotion: (F0 mean, F0 spread, duration, RMS level) relative to neutral, measured on synth_emo train
PORTRAYAL = {"neutral": (1.0, 1.0, 1.0, 1.0), "happy": (1.56, 1.92, 0.89, 1.66),
             "sad": (0.81, 0.61, 1.76, 0.54), "angry": (1.19, 1.61, 0.89, 2.01)}
# Flite voices whose F0 target can be set (rms ignores it), with a natural base F0 (Hz)
VOICES = {"flite": {"flite_slt": ("slt", 170.0), "flite_awb": ("awb", 110.0), "flite_kal16": ("kal16", 105.0)},
          "festival": {"fest_kal090": ("kal_diphone", 90.0), "fest_kal120": ("kal_diphone", 120.0),
                       "fest_kal150": ("kal_diphone", 150.0)}}
PROGRAMS = {"flite": ("flite", "apt-get install flite"),
            "festival": ("text2wave", "apt-get install festival festvox-kallpc16k")}
NEUTRAL_SPREAD = 0.12  # F0 standard deviation of the neutral portrayal, relative to its mean


def require(synth: str) -> None:
    """Stop with the package to install when ``synth``'s program is not on PATH."""
    program, install = PROGRAMS[synth]
    if shutil.which(program) is None:
        raise SystemExit(f"no '{program}' program on PATH for the {synth} voices (Debian/Ubuntu: {install}; "
                         f"tools/install.sh --voices)")


def speak(synth: str, voice: str, text: str, f0: float, spread: float, stretch: float) -> np.ndarray:
    """16 kHz audio of ``text`` at F0 mean/spread (Hz) and duration factor ``stretch``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        if synth == "flite":
            cmd = ["flite", "-voice", voice, "--setf", f"int_f0_target_mean={f0:.1f}",
                   "--setf", f"int_f0_target_stddev={spread:.1f}", "--setf", f"duration_stretch={stretch:.3f}",
                   "-t", text, "-o", str(wav)]
        else:  # festival: its linear-regression intonation targets and duration stretch
            (Path(tmp) / "x.txt").write_text(text + "\n")
            cmd = ["text2wave", "-o", str(wav), "-eval", f"(voice_{voice})",
                   "-eval", f"(set! int_lr_params '((target_f0_mean {f0:.1f}) (target_f0_std {spread:.1f}) "
                            f"(model_f0_mean 170) (model_f0_std 34)))",
                   "-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})", str(Path(tmp) / "x.txt")]
        subprocess.run(cmd, check=True, capture_output=True)
        x, fs = soundfile.read(wav, dtype="float32")
    if fs != 16000:
        raise SystemExit(f"{synth} voice {voice} wrote {fs} Hz audio; these voices need 16 kHz")
    return x


def portray(synth: str, voice: str, text: str, emotion: str, base_f0: float, stretch: float = 1.0,
            expressiveness: float = 1.0, gain: float = 1.0) -> np.ndarray:
    """``text`` in ``emotion``: PORTRAYAL's factors (raised to ``expressiveness``) on a voice of base F0
    ``base_f0`` Hz, base duration factor ``stretch`` and recording level ``gain``."""
    f0, spread, duration, level = (v ** expressiveness for v in PORTRAYAL[emotion])
    x = speak(synth, voice, text, base_f0 * f0, base_f0 * f0 * NEUTRAL_SPREAD * spread, stretch * duration)
    return np.clip(x * level * gain, -1.0, 1.0).astype(np.float32)
