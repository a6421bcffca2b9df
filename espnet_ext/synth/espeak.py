"""Minimal ctypes driver for libespeak-ng (shipped by the PyPI wheel ``espeakng-loader``).

Only what the synthetic corpus needs: pick a voice (``en-us+f2``), set rate/pitch/range/volume/word gap,
synthesise UTF-8 text (optionally SSML, for pauses) to a float32 numpy array.
"""
from __future__ import annotations

import ctypes
from typing import List, Optional

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8, _SSML = 1, 0x10
_POS_CHARACTER = 1
PARAMS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One libespeak-ng instance per process (the library keeps global state)."""

    _instance: Optional["Espeak"] = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._init()
        return cls._instance

    def _init(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:
            raise RuntimeError("espeakng-loader is not installed (run tools/install.sh)") from e
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: List[np.ndarray] = []

        def collect(wav, num_samples, events):
            if num_samples > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference: ctypes must not free it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        # espeak-ng's noise sources (breathy variants, frication) draw from its own generator, seeded from the
        # clock at initialisation: without a seed per utterance, two runs write different audio.
        self._set_seed = getattr(self.lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]

    def synth(self, text: str, voice: str = "en-us", ssml: bool = False, seed: Optional[int] = None,
              **params: int) -> np.ndarray:
        """Speak ``text``; ``params`` are rate (wpm), pitch and range (0-100), volume (0-200), wordgap (10 ms).
        ``seed``: the same seed gives the same samples in any process (else the noise depends on the clock)."""
        if seed is not None:
            if self._set_seed is None:
                raise RuntimeError("this libespeak-ng has no espeak_ng_SetRandSeed: its audio cannot be made "
                                   "reproducible (install the espeakng-loader that tools/requirements.txt pins)")
            self._set_seed(int(seed))
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice '{voice}'")
        for name, value in params.items():
            if name not in PARAMS:
                raise ValueError(f"unknown espeak parameter '{name}' (known: {sorted(PARAMS)})")
            self.lib.espeak_SetParameter(PARAMS[name], int(value), 0)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        flags = _CHARS_UTF8 | (_SSML if ssml else 0)
        rc = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
        if rc != 0:
            raise RuntimeError(f"espeak_Synth failed with code {rc} for text {text!r}")
        self.lib.espeak_Synchronize()
        if not self._chunks:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r}")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0
