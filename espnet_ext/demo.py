"""What the web demo shows for one recording (bin/demo.py puts it on a page): the frozen LLM's reply from the
speech tokens, its answer to "What emotion do you hear in my voice?", a transcript-only system's reply (the
offline Whisper transcript into the same frozen LLM), and a pitch/loudness picture of the input.

The page shows the reply as soon as it is decoded and the rest after it (``DemoBackend.stream``).
The reply goes through the same path as ``palign_inference --wav`` (load_mono, batch_tensor, the model's
greedy ``answer``), so the page shows what the CLI prints for the same file."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from espnet_ext.audio import frame_db, load_mono
from espnet_ext.datadir import read_kv
from espnet_ext.inference import (FS, batch_tensor, duration_problem, find_model_file, load_model, min_speech_samples,
                                  question, reads_transcript)
from espnet_ext.palign.prompts import teacher_prompt

MAX_SECONDS = 30.0
SILENCE_PEAK = 1e-3  # below about -60 dBFS everywhere: nothing was recorded


class DemoInputError(ValueError):
    """A recording the demo cannot answer; the message is shown in the page."""


@dataclass
class DemoResult:
    reply: str
    emotion: str
    transcript: str
    text_reply: str
    reply_seconds: float  # from the submit to the ParaAlign reply
    seconds: float        # from the submit to this result
    done: bool = True     # False: only the reply is in yet


def read_recording(path: Optional[str], min_samples: int = 1) -> np.ndarray:
    """The recording as 16 kHz mono float32, or a DemoInputError that says what is wrong with it.
    ``min_samples``: the fewest the model can encode (``DemoBackend.min_samples``)."""
    if not path:
        raise DemoInputError("No recording: record with the microphone or upload an audio file first.")
    try:
        x = load_mono(str(path), FS)
    except Exception as e:  # noqa: BLE001 - any decoder failure is the same message to a visitor
        reason = str(e).replace(str(path), Path(path).name)  # not the server's upload path
        raise DemoInputError(f"Cannot read this file as audio ({type(e).__name__}: {reason}). "
                             f"Upload a WAV, FLAC or OGG file.") from None
    if len(x) / FS > MAX_SECONDS:
        raise DemoInputError(f"The recording is {len(x) / FS:.1f} s long; the demo takes up to {MAX_SECONDS:.0f} s.")
    if 0 < len(x) < min_samples:
        raise DemoInputError(f"The recording is {duration_problem(len(x), min_samples, MAX_SECONDS)}: record "
                             f"a little longer.")
    if len(x) == 0 or float(np.abs(x).max()) < SILENCE_PEAK:
        raise DemoInputError("The recording is silent: check the microphone and record again.")
    return x


class DemoBackend:
    """The trained model, loaded once; ``answer`` does the work of one page submit."""

    def __init__(self, model_dir: Path, model_file: Optional[Path] = None, device: str = "cpu",
                 max_new_tokens: int = 64, asr_model: Optional[str] = None):
        self.model_dir = Path(model_dir)
        self.model_file = Path(model_file) if model_file else find_model_file(self.model_dir)
        self.model, self.train_args = load_model(self.model_dir, self.model_file, device)
        self.device, self.max_new_tokens = device, max_new_tokens
        self.min_samples = min_speech_samples(self.model)  # shorter recordings get a message, not a traceback
        self.prompt_conf = self.train_args.prompt_conf
        self.asr, self.asr_error = None, ""
        try:
            from espnet_ext.whisper_asr import WhisperASR

            self.asr = WhisperASR(asr_model)
        except Exception as e:  # noqa: BLE001 - the demo runs without the transcript-only column
            self.asr_error = f"no offline Whisper model ({e}); the transcript-only column is off"
            logging.warning(self.asr_error)

    def info(self) -> Dict[str, str]:
        llm = self.model.llm
        return {"model": str(self.model_file), "LLM": f"{llm.name_or_path} (weights fingerprint {llm.fingerprint[:12]})",
                "prompts": f"{self.model_dir / 'config.yaml'} (prompt_conf, inlined at training)",
                "system prompt": str(self.prompt_conf.get("system") or "(the chat template's default)"),
                "emotion question": str(self.prompt_conf["student"].get("emotion", "")).replace("<speech>", "").strip(),
                "tasks": ", ".join(self.model.tasks)}

    @torch.no_grad()
    def stream(self, x: np.ndarray, prompt: Optional[str] = None) -> Iterator[DemoResult]:
        """The page's answers as they come: first the ParaAlign reply alone (what a visitor waits for), then
        the emotion answer and the transcript-only reply, decoded together as one batch."""
        start = time.time()
        speech, lengths = batch_tensor([x], self.device)
        prompt = (prompt or "").strip() or None
        with torch.no_grad():
            tokens = self.model.encode(speech, lengths)  # once, for every question below
        reply_q = {"reply": question(self.model, self.train_args, "response", prompt)}
        emotion_q = {"emotion": question(self.model, self.train_args, "emotion", None)}  # as stage 7 asks
        transcript, texts = None, None
        if reads_transcript(self.model, {**reply_q, **emotion_q}):  # a model that is given the words too
            if self.asr is None:
                raise DemoInputError(f"This model reads the transcript beside the speech, and {self.asr_error}.")
            transcript = self.asr.transcribe(x)
            texts = [transcript or "..."]
        reply = self.model.answer_tokens([(*tokens, reply_q)], self.max_new_tokens, texts=texts)["reply"][0]
        first = time.time() - start
        yield DemoResult(reply, "", "", "", first, first, done=False)
        text_users = {}
        if self.asr is not None:
            transcript = self.asr.transcribe(x) if transcript is None else transcript
            text_users = {"text": [teacher_prompt(self.prompt_conf, "response_neutral", transcript or "...", "")]}
        # One batched generate (on 2 CPU cores about what two single ones cost: ~2.5 s per 24-token row).
        out = self.model.answer_tokens([(*tokens, emotion_q)], self.max_new_tokens, text_users, texts=texts)
        text_reply = out["text"][0] if "text" in out else self.asr_error
        yield DemoResult(reply, out["emotion"][0], transcript or "", text_reply, first, time.time() - start, done=True)

    def answer(self, x: np.ndarray, prompt: Optional[str] = None) -> DemoResult:
        """Everything the page shows for one recording (the last result of ``stream``)."""
        for result in self.stream(x, prompt):
            pass
        return result


def prosody_figure(x: np.ndarray):
    """Pitch (YIN, voiced frames) and loudness (RMS dB) over time: a picture for the page."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from espnet_ext.palign.frontend import yin_pitch

    f0, _ = yin_pitch(torch.from_numpy(x)[None])
    f0 = f0[0].numpy()
    hop = 160
    db = np.maximum(frame_db(np.pad(x, (200, 200)), 400, hop)[: len(f0)], -100.0)  # centred like the pitch frames
    t = np.arange(len(f0)) * hop / FS
    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 3.2), sharex=True)
    a.plot(t, np.where(f0 > 0, f0, np.nan), ".", markersize=2, color="tab:blue")
    a.set_ylabel("pitch (Hz)")
    b.plot(t[: len(db)], db, color="tab:orange")
    b.set_ylabel("loudness (dB)")
    b.set_xlabel("time (s)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def minimal_pair_examples(data_dir: Optional[Path], limit: int = 4) -> List[List[str]]:
    """One sentence of one voice in every emotion of a data dir (utt2sentid, utt2emo): the same words in
    four ways, for the page's example buttons. Empty when the dir lacks what is needed."""
    if data_dir is None or not all((Path(data_dir) / f).exists() for f in ("wav.scp", "utt2emo", "utt2spk")):
        return []
    d = Path(data_dir)
    wav, emo, spk = read_kv(d / "wav.scp"), read_kv(d / "utt2emo"), read_kv(d / "utt2spk")
    sent = read_kv(d / "utt2sentid") if (d / "utt2sentid").exists() else read_kv(d / "text")
    groups: Dict[tuple, Dict[str, str]] = {}
    for utt in sorted(wav):
        groups.setdefault((spk[utt], sent[utt]), {}).setdefault(emo[utt], utt)
    best = max(groups.values(), key=len, default={})
    return [[wav[u], emotion] for emotion, u in sorted(best.items())][:limit]
