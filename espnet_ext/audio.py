"""Audio loading for wav.scp entries (paths or Kaldi pipe commands), mono down-mix and resampling."""
from __future__ import annotations

import io
import subprocess
from fractions import Fraction
from typing import Optional, Tuple

import numpy as np
import soundfile


def read_wav_scp_entry(value: str) -> Tuple[np.ndarray, int]:
    """Load a wav.scp value: a file path, or a shell command ending in '|' that writes audio to stdout.

    Returns float32 samples shaped (time, channels) and the sample rate."""
    if value.endswith("|"):
        proc = subprocess.run(value[:-1], shell=True, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"command failed (rc={proc.returncode}): {value[:-1]}\n{proc.stderr.decode()[-500:]}")
        data, sr = soundfile.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    else:
        data, sr = soundfile.read(value, dtype="float32", always_2d=True)
    return data, sr


def to_mono(data: np.ndarray, channel: Optional[int] = None) -> np.ndarray:
    """Pick one channel (0-based) or average them all."""
    if channel is not None:
        if channel >= data.shape[1]:
            raise ValueError(f"channel {channel} requested but audio has {data.shape[1]} channel(s)")
        return data[:, channel]
    return data.mean(axis=1)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (exact for rational ratios such as 48 kHz -> 16 kHz)."""
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(sr_out, sr_in).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def load_mono(value: str, fs: int, start: float = 0.0, end: Optional[float] = None,
              channel: Optional[int] = None) -> np.ndarray:
    """A wav.scp entry as mono float32 at ``fs``, optionally cut to [start, end) seconds."""
    data, sr = read_wav_scp_entry(value)
    a = int(round(start * sr))
    b = data.shape[0] if end is None else min(data.shape[0], int(round(end * sr)))
    return resample(to_mono(data[a:b], channel), sr, fs)
