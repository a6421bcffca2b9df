"""Audio loading for wav.scp entries (paths or Kaldi pipe commands), mono down-mix and resampling."""
from __future__ import annotations

import io
import struct
import subprocess
from fractions import Fraction
from typing import Optional, Tuple

import numpy as np
import soundfile

from espnet_ext.datadir import write_atomic


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
    if data.shape[0] == 0:
        raise ValueError("no audio samples")
    a = int(round(start * sr))
    b = data.shape[0] if end is None else min(data.shape[0], int(round(end * sr)))
    if a >= data.shape[0] or (end is not None and end * sr > data.shape[0] + 0.1 * sr):
        raise ValueError(f"segment {start:.2f}-{end if end is not None else 'end'} s lies beyond the audio's "
                         f"{data.shape[0] / sr:.2f} s")  # a tenth of a second of slack, as Kaldi allows
    return resample(to_mono(data[a:b], channel), sr, fs)


def wav_declared_frames(path: str) -> Optional[int]:
    """Frames a RIFF/WAVE file's header promises (its data chunk size / block size), or None for other
    files. libsndfile silently reads what is there, so a truncated download looks like a shorter file."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(size + (size & 1))
                    block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
                elif cid == b"data":
                    return size // block if block and size != 0xFFFFFFFF else None
                else:
                    f.seek(size + (size & 1), 1)
    except OSError:
        return None


def check_samples(x: np.ndarray, where: str) -> int:
    """Reject NaN/Inf samples; return how many exceed full scale (|x| > 1) and would be clipped."""
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{where}: {int(bad.sum())} NaN/Inf sample(s), first at sample {int(np.argmax(bad))}")
    return int((np.abs(x) > 1.0).sum())


def check_complete(path: str) -> None:
    """A WAV file shorter than its header says is an error (truncated copy or download)."""
    declared = wav_declared_frames(path)
    if declared is not None:
        frames = soundfile.info(path).frames
        if frames < declared:
            raise ValueError(f"{path}: truncated: the header promises {declared} samples, the file holds {frames}")


def frame_db(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """RMS level in dB of frames of ``win`` samples every ``hop`` samples (the last partial frame dropped)."""
    if len(x) < win:
        return np.zeros(0)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    return 20 * np.log10(np.sqrt((frames.astype(np.float64) ** 2).mean(-1)) + 1e-8)


def write_wav_atomic(dst, x: np.ndarray, fs: int) -> None:
    """16-bit WAV, encoded in memory and written atomically (``datadir.write_atomic``): libsndfile writing to
    disk reports a full disk only as "System error"."""
    buf = io.BytesIO()
    soundfile.write(buf, x, fs, subtype="PCM_16", format="WAV")
    write_atomic(dst, buf.getvalue())
