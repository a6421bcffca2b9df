"""The embedded corpus *synth_emo*: emotionally ambiguous sentences spoken by espeak-ng voices in
four emotions, so that the emotion is only in the voice (pitch, pitch range, rate, loudness, pauses).

Splits, all deterministic from a seed:
  train        40 random voices x 16 seen sentences each x emotions
  valid        4 other random voices x 6 seen sentences each x emotions
  test         2 held-out voices x 24 seen sentences x emotions          (new voices)
  test_unseen  the same held-out voices x 16 held-out sentences x emotions (new voices and sentences)
With ``Design.flite_train_voices`` > 0, train has that many more voices from a second synthesiser, CMU
Flite (flite_festival.py), so that what "neutral" sounds like is not one synthesiser's; Festival stays out
of training for the check sets. The espeak-ng voices and every other split stay as they were.
Every sentence a voice speaks, it speaks in every emotion (minimal pairs). Each training voice is a random
draw of variant, base pitch, rate, expressiveness and level, so that only prosody relative to the speaker
carries the emotion; the test voices use variants and base values that no training voice has.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from espnet_ext.audio import resample, write_wav_atomic
from espnet_ext.datadir import spk2utt_from, write_kv


@dataclass(frozen=True)
class Voice:
    """A speaker: an espeak-ng voice + variant, its base prosody and how strongly it expresses emotion."""
    name: str             # speaker id
    espeak: str           # espeak-ng voice + variant
    pitch: int            # base pitch, 0-100
    rate: int             # base rate, words per minute
    expressiveness: float = 1.0  # scales the emotions' pitch shifts
    range_offset: int = 0        # added to the emotions' pitch ranges
    gain: float = 1.0            # recording level (scales every emotion's volume)


@dataclass(frozen=True)
class FliteVoice:
    """A training speaker of CMU Flite: one of its voices at a drawn base F0, duration and level, portrayed
    by flite_festival.PORTRAYAL's factors raised to its expressiveness."""
    name: str
    flite: str            # flite -voice
    f0: float             # base F0 (Hz)
    stretch: float = 1.0  # base duration factor
    expressiveness: float = 1.0
    gain: float = 1.0


@dataclass(frozen=True)
class Emotion:
    """Prosody relative to a voice's base: pitch offset, range, rate factor, volume, word gap (10 ms)."""
    pitch_shift: int
    range: int
    rate_factor: float
    volume: int
    wordgap: int
    exclaim: bool = False  # spoken with espeak's exclamation intonation (the transcript keeps its '.')


EMOTIONS: Dict[str, Emotion] = {
    "neutral": Emotion(pitch_shift=0, range=30, rate_factor=1.00, volume=100, wordgap=0),
    "happy": Emotion(pitch_shift=26, range=100, rate_factor=1.15, volume=135, wordgap=0, exclaim=True),
    "sad": Emotion(pitch_shift=-16, range=10, rate_factor=0.70, volume=60, wordgap=5),
    "angry": Emotion(pitch_shift=6, range=60, rate_factor=1.25, volume=200, wordgap=1, exclaim=True),
}

# Held-out voices of test/test_unseen: variants no training voice uses, at base pitches and rates that the
# training draws keep away from (see draw_voices).
TEST_VOICES: List[Voice] = [Voice("spk07", "en+m2", 44, 158), Voice("spk08", "en-us+f3", 62, 168)]
TRAIN_LANGUAGES = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
TRAIN_VARIANTS = ("m1", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f4", "f5", "Andy", "Annie", "adam",
                  "anika", "aunty", "belinda", "benjamin", "david", "edward", "ian", "john", "linda", "max",
                  "paul", "robert", "shelby", "steph", "travis")
PITCH_RANGE, RATE_RANGE, HOLDOUT = (25, 75), (140, 185), 3  # HOLDOUT: distance kept from test values


def draw_voices(n: int, rng: random.Random, prefix: str) -> List[Voice]:
    """``n`` random speakers: language, variant, base pitch and rate, expressiveness and level, so that
    only prosody *relative to the speaker* tells the emotions apart. Base pitch and rate keep HOLDOUT away
    from every test voice's values."""
    def pick(lo_hi, taken):
        while True:
            v = rng.randint(*lo_hi)
            if all(abs(v - t) >= HOLDOUT for t in taken):
                return v
    voices = []
    for i in range(n):
        voices.append(Voice(
            f"{prefix}{i + 1:03d}", f"{rng.choice(TRAIN_LANGUAGES)}+{rng.choice(TRAIN_VARIANTS)}",
            pitch=pick(PITCH_RANGE, [v.pitch for v in TEST_VOICES]),
            rate=pick(RATE_RANGE, [v.rate for v in TEST_VOICES]),
            expressiveness=round(rng.uniform(0.8, 1.2), 3), range_offset=rng.randint(-8, 8),
            gain=round(rng.uniform(0.85, 1.15), 3)))
    return voices


def draw_flite_voices(n: int, rng: random.Random) -> List[FliteVoice]:
    """``n`` Flite speakers, its voices in turn, each at a random base F0 (0.85-1.2 x the voice's own),
    duration, expressiveness and level."""
    from espnet_ext.synth.flite_festival import VOICES

    natural = list(VOICES["flite"].values())
    return [FliteVoice(f"flt{i + 1:03d}", natural[i % len(natural)][0],
                       f0=round(natural[i % len(natural)][1] * rng.uniform(0.85, 1.2), 1),
                       stretch=round(rng.uniform(0.9, 1.1), 3), expressiveness=round(rng.uniform(0.8, 1.2), 3),
                       gain=round(rng.uniform(0.85, 1.15), 3)) for i in range(n)]


@dataclass
class Design:
    """How many voices and sentences go to each split. Train and valid voices are random draws (disjoint
    speakers); test voices are TEST_VOICES."""
    train_voices: int = 40
    valid_voices: int = 4
    test_voices: int = 2     # the first of TEST_VOICES
    sentences_per_train_voice: int = 16
    sentences_per_valid_voice: int = 6
    num_unseen_sentences: int = 32
    num_test_sentences: int = 24
    num_test_unseen_sentences: int = 16
    words_utterances: int = 0  # > 0: a train_words split of that many utterances for learning the words
    flite_train_voices: int = 0  # > 0: that many more train voices from CMU Flite (apt flite)


def word_sequences(n: int, seed: int, min_words: int = 5, max_words: int = 9) -> List[str]:
    """``n`` random sequences of common English words (Faker's en_US word list, 2,000+ words, chosen by
    no one here): what was said, without a sentence's predictability, for the transcription task. They
    share no design with the corpus sentences; some of their words are in the held-out sentences, as a
    general vocabulary's would be."""
    from faker.providers.lorem.en_US import Provider

    words = sorted(set(Provider.word_list))
    rng = random.Random(f"{seed}-words")
    out = []
    for _ in range(n):
        seq = [rng.choice(words) for _ in range(rng.randint(min_words, max_words))]
        out.append(" ".join(seq).capitalize() + ".")
    return out


def read_sentences(path: Path) -> List[str]:
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [s for s in lines if s and not s.startswith("#")]
    dup = {s for s in sentences if sentences.count(s) > 1}
    if dup:
        raise ValueError(f"{path}: duplicated sentence(s): {sorted(dup)[:3]}")
    return sentences


AnyVoice = Union[Voice, FliteVoice]


def plan_splits(num_sentences: int, design: Design, seed: int) -> Dict[str, List[Tuple[AnyVoice, List[int]]]]:
    """(voice, sentence ids) per split; sentence ids are 1-based positions in the list. Train voices each
    speak a random subset of the seen sentences; test voices speak the same test sentences (minimal pairs
    across voices too)."""
    rng = random.Random(seed)
    order = list(range(1, num_sentences + 1))
    rng.shuffle(order)
    unseen, seen = sorted(order[:design.num_unseen_sentences]), sorted(order[design.num_unseen_sentences:])
    if min(design.train_voices, design.valid_voices, design.test_voices) < 1 or \
            design.test_voices > len(TEST_VOICES):
        raise ValueError(f"need >= 1 train, valid and test voice(s), at most {len(TEST_VOICES)} test voices")
    voices = draw_voices(design.train_voices + design.valid_voices, rng, "spk")
    train, valid = voices[:design.train_voices], voices[design.train_voices:]

    def subset(pool, k):
        return sorted(rng.sample(pool, min(k, len(pool))))
    train_plan = [(v, subset(seen, design.sentences_per_train_voice)) for v in train]
    spoken = sorted({s for _, sents in train_plan for s in sents})  # test sentences were heard in training
    valid_plan = [(v, subset(seen, design.sentences_per_valid_voice)) for v in valid]
    test_sents = subset(spoken, design.num_test_sentences)
    unseen_sents = subset(unseen, design.num_test_unseen_sentences)
    test_voices = TEST_VOICES[:design.test_voices]
    if design.flite_train_voices > 0:  # drawn apart, so that the espeak-ng plan is the same with or without
        frng = random.Random(f"{seed}-flite")
        flite = draw_flite_voices(design.flite_train_voices, frng)
        train_plan += [(v, sorted(frng.sample(seen, min(design.sentences_per_train_voice, len(seen))))) for v in flite]
        train += flite
    return {"train": train_plan, "valid": valid_plan,
            "test": [(v, test_sents) for v in test_voices],
            "test_unseen": [(v, unseen_sents) for v in test_voices],
            "train_words": [(v, []) for v in train]}  # its utterances: build() deals them to these voices


def render(text: str, voice: AnyVoice, emotion: str, rng: random.Random, fs: int, noise_seed: int = 0) -> np.ndarray:
    """Speak ``text`` with ``voice`` in ``emotion``; small per-utterance jitter keeps takes distinct.
    ``noise_seed`` seeds espeak-ng's noise (breathy variants, frication), which it would draw from the clock."""
    pad = np.zeros(int(0.15 * fs), dtype=np.float32)  # short silences, as in a recording
    if isinstance(voice, FliteVoice):
        from espnet_ext.synth.flite_festival import portray

        x = portray("flite", voice.flite, text, emotion, voice.f0 * rng.uniform(0.97, 1.03),
                    voice.stretch * rng.uniform(0.96, 1.04), voice.expressiveness, voice.gain)
        return np.concatenate([pad, np.clip(resample(x, 16000, fs), -1.0, 1.0), pad])
    from espnet_ext.synth.espeak import Espeak

    e = EMOTIONS[emotion]
    engine = Espeak()
    x = engine.synth(
        text.rstrip(".?!") + "!" if e.exclaim else text, voice.espeak,
        rate=round(voice.rate * e.rate_factor * rng.uniform(0.96, 1.04)),
        pitch=max(0, min(100, voice.pitch + round(e.pitch_shift * voice.expressiveness) + rng.randint(-3, 3))),
        range=max(0, min(100, e.range + voice.range_offset)), volume=round(e.volume * voice.gain),
        wordgap=e.wordgap, seed=noise_seed)
    x = np.clip(resample(x, engine.sample_rate, fs), -1.0, 1.0)
    return np.concatenate([pad, x, pad])


def build(sentences_file: Path, out_data: Path, wav_dir: Path, seed: int = 777, fs: int = 16000,
          design: Design = Design(), splits: Sequence[str] = ("train", "valid", "test", "test_unseen"),
          progress: bool = True) -> Dict[str, Dict[str, int]]:
    """Synthesise every split into Kaldi data dirs ``out_data/<split>``; returns counts per split."""
    from tqdm import tqdm

    sentences = read_sentences(sentences_file)
    plan = plan_splits(len(sentences), design, seed)
    if design.flite_train_voices > 0 and "train" in splits:
        from espnet_ext.synth.flite_festival import require

        require("flite")
    counts = {}
    for split in splits:
        files: Dict[str, Dict[str, str]] = {k: {} for k in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2sentid")}
        rng = random.Random(f"{seed}-{split}")
        (wav_dir / split).mkdir(parents=True, exist_ok=True)
        if split == "train_words":  # one random emotion per utterance, the training voices in turn
            texts = word_sequences(design.words_utterances, seed)
            voices = [v for v, _ in plan[split]]
            jobs = [(voices[i % len(voices)], rng.choice(list(EMOTIONS)), i + 1) for i in range(len(texts))]
        else:
            jobs = [(v, emo, sid) for v, sent_ids in plan[split] for emo in EMOTIONS for sid in sent_ids]
        for voice, emo, sid in tqdm(jobs, desc=f"synth {split}", disable=not progress, mininterval=5):
            if split == "train_words":
                utt, text = f"{voice.name}_{emo}_w{sid:05d}", texts[sid - 1]
            else:
                utt, text = f"{voice.name}_{emo}_s{sid:03d}", sentences[sid - 1]
            path = wav_dir / split / f"{utt}.wav"
            # always drawn, so the jitter does not depend on resuming; the noise seed is the utterance's own
            x = render(text, voice, emo, rng, fs, noise_seed=zlib.crc32(f"{seed}-{split}-{utt}".encode()) & 0x7FFFFFFF)
            if not path.exists():
                write_wav_atomic(path, x, fs)
            files["wav.scp"][utt] = str(path.resolve())
            files["text"][utt] = text
            files["utt2spk"][utt] = voice.name
            files["utt2emo"][utt] = emo
            files["utt2sentid"][utt] = f"{'w' if split == 'train_words' else 's'}{sid:03d}"
        d = out_data / split
        d.mkdir(parents=True, exist_ok=True)
        for name, kv in files.items():
            write_kv(d / name, kv)
        write_kv(d / "spk2utt", spk2utt_from(files["utt2spk"]))
        counts[split] = {"utterances": len(files["utt2spk"]), "speakers": len(plan[split]),
                         "emotions": len(EMOTIONS), "sentences": len(set(files["utt2sentid"].values()))}
    return counts
