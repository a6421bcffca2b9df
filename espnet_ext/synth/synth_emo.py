"""The embedded corpus *synth_emo*: emotionally ambiguous sentences spoken by espeak-ng voices in
four emotions, so that the emotion is only in the voice (pitch, pitch range, rate, loudness, pauses).

Splits, all deterministic from a seed:
  train        train voices x seen sentences x emotions
  valid        the valid voice x some seen sentences x emotions
  test         held-out voices x some seen sentences x emotions      (new voices)
  test_unseen  held-out voices x held-out sentences x emotions       (new voices and sentences)
Every sentence of a test set appears in every emotion (minimal pairs).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile

from espnet_ext.audio import resample
from espnet_ext.datadir import spk2utt_from, write_kv


@dataclass(frozen=True)
class Voice:
    name: str     # speaker id
    espeak: str   # espeak-ng voice + variant
    pitch: int    # base pitch, 0-100
    rate: int     # base rate, words per minute


@dataclass(frozen=True)
class Emotion:
    """Prosody relative to a voice's base: pitch offset, range, rate factor, volume, word gap (10 ms)."""
    pitch_shift: int
    range: int
    rate_factor: float
    volume: int
    wordgap: int


EMOTIONS: Dict[str, Emotion] = {
    "neutral": Emotion(pitch_shift=0, range=40, rate_factor=1.00, volume=100, wordgap=0),
    "happy": Emotion(pitch_shift=22, range=90, rate_factor=1.15, volume=125, wordgap=0),
    "sad": Emotion(pitch_shift=-16, range=10, rate_factor=0.70, volume=60, wordgap=5),
    "angry": Emotion(pitch_shift=6, range=60, rate_factor=1.25, volume=190, wordgap=1),
}

VOICES: List[Voice] = [
    Voice("spk01", "en-us+m1", 42, 165),
    Voice("spk02", "en-us+f2", 56, 160),
    Voice("spk03", "en+m3", 38, 170),
    Voice("spk04", "en-us+f4", 60, 155),
    Voice("spk05", "en-gb-x-rp+m7", 45, 160),
    Voice("spk06", "en-us+f1", 58, 165),
    Voice("spk07", "en+m2", 44, 158),
    Voice("spk08", "en-us+f3", 62, 168),
]


@dataclass
class Design:
    """Which voices and how many sentences go to each split."""
    train_voices: int = 5
    valid_voices: int = 1
    test_voices: int = 2     # the last voices of VOICES
    num_unseen_sentences: int = 32
    num_valid_sentences: int = 24
    num_test_sentences: int = 24
    num_test_unseen_sentences: int = 16
    max_train_sentences: int = 0  # 0: all seen sentences


def read_sentences(path: Path) -> List[str]:
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [s for s in lines if s and not s.startswith("#")]
    dup = {s for s in sentences if sentences.count(s) > 1}
    if dup:
        raise ValueError(f"{path}: duplicated sentence(s): {sorted(dup)[:3]}")
    return sentences


def plan_splits(num_sentences: int, design: Design, seed: int) -> Dict[str, Dict[str, List]]:
    """Voices and sentence indices per split (sentence ids are 1-based positions in the list)."""
    rng = random.Random(seed)
    order = list(range(1, num_sentences + 1))
    rng.shuffle(order)
    unseen, seen = sorted(order[:design.num_unseen_sentences]), sorted(order[design.num_unseen_sentences:])
    nt, nv, ne = design.train_voices, design.valid_voices, design.test_voices
    if nt + nv + ne > len(VOICES) or min(nt, nv, ne) < 1:
        raise ValueError(f"{nt} train + {nv} valid + {ne} test voices: need >= 1 each, {len(VOICES)} in all")
    train_sents = seen if not design.max_train_sentences else sorted(rng.sample(seen, design.max_train_sentences))
    return {
        "train": {"voices": VOICES[:nt], "sentences": train_sents},
        "valid": {"voices": VOICES[nt:nt + nv], "sentences": sorted(rng.sample(seen, design.num_valid_sentences))},
        "test": {"voices": VOICES[-ne:], "sentences": sorted(rng.sample(seen, design.num_test_sentences))},
        "test_unseen": {"voices": VOICES[-ne:],
                        "sentences": sorted(rng.sample(unseen, design.num_test_unseen_sentences))},
    }


def render(text: str, voice: Voice, emotion: str, rng: random.Random, fs: int) -> np.ndarray:
    """Speak ``text`` with ``voice`` in ``emotion``; small per-utterance jitter keeps takes distinct."""
    from espnet_ext.synth.espeak import Espeak

    e = EMOTIONS[emotion]
    engine = Espeak()
    x = engine.synth(
        text, voice.espeak,
        rate=round(voice.rate * e.rate_factor * rng.uniform(0.96, 1.04)),
        pitch=max(0, min(100, voice.pitch + e.pitch_shift + rng.randint(-3, 3))),
        range=e.range, volume=e.volume, wordgap=e.wordgap)
    x = np.clip(resample(x, engine.sample_rate, fs), -1.0, 1.0)
    pad = np.zeros(int(0.15 * fs), dtype=np.float32)  # short silences, as in a recording
    return np.concatenate([pad, x, pad])


def build(sentences_file: Path, out_data: Path, wav_dir: Path, seed: int = 777, fs: int = 16000,
          design: Design = Design(), splits: Sequence[str] = ("train", "valid", "test", "test_unseen"),
          progress: bool = True) -> Dict[str, Dict[str, int]]:
    """Synthesise every split into Kaldi data dirs ``out_data/<split>``; returns counts per split."""
    from tqdm import tqdm

    sentences = read_sentences(sentences_file)
    plan = plan_splits(len(sentences), design, seed)
    counts = {}
    for split in splits:
        voices, sent_ids = plan[split]["voices"], plan[split]["sentences"]
        files: Dict[str, Dict[str, str]] = {k: {} for k in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2sentid")}
        rng = random.Random(f"{seed}-{split}")
        (wav_dir / split).mkdir(parents=True, exist_ok=True)
        jobs = [(v, emo, sid) for v in voices for emo in EMOTIONS for sid in sent_ids]
        for voice, emo, sid in tqdm(jobs, desc=f"synth {split}", disable=not progress, mininterval=5):
            utt = f"{voice.name}_{emo}_s{sid:03d}"
            text = sentences[sid - 1]
            path = wav_dir / split / f"{utt}.wav"
            x = render(text, voice, emo, rng, fs)  # always drawn, so the jitter does not depend on resuming
            if not path.exists():
                tmp = path.with_suffix(".tmp.wav")
                soundfile.write(str(tmp), x, fs, subtype="PCM_16")
                tmp.replace(path)
            files["wav.scp"][utt] = str(path.resolve())
            files["text"][utt] = text
            files["utt2spk"][utt] = voice.name
            files["utt2emo"][utt] = emo
            files["utt2sentid"][utt] = f"s{sid:03d}"
        d = out_data / split
        d.mkdir(parents=True, exist_ok=True)
        for name, kv in files.items():
            write_kv(d / name, kv)
        write_kv(d / "spk2utt", spk2utt_from(files["utt2spk"]))
        counts[split] = {"utterances": len(files["utt2spk"]), "speakers": len(voices),
                         "emotions": len(EMOTIONS), "sentences": len(sent_ids)}
    return counts
