"""What every corpus preparer shares: an utterance record, writing data dirs, counting what was dropped."""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from espnet_ext.datadir import spk2utt_from, validate, write_kv


class CorpusError(ValueError):
    """The corpus root is missing or does not look like the expected release."""


@dataclass
class Utt:
    utt: str                      # utterance id; starts with the speaker id
    spk: str
    wav: str                      # path (or recording id when ``rec_path`` is set)
    text: Optional[str]
    emo: str
    start: Optional[float] = None  # with segments
    end: Optional[float] = None
    channel: Optional[int] = None
    extra: Dict[str, str] = field(default_factory=dict)  # more per-utterance files, e.g. utt2style


def require_dir(path: Path, corpus: str, expected: str) -> Path:
    if not path.is_dir():
        raise CorpusError(f"{corpus}: {path} not found; expected {expected}")
    return path


def fill_missing_transcripts(utts: List[Utt], how: str, fs: int = 16000) -> List[Utt]:
    """``drop`` utterances without a transcript, or transcribe them with Whisper (``asr``); both counted."""
    missing = [u for u in utts if not (u.text or "").strip()]
    if not missing:
        return utts
    if how == "drop":
        logging.warning(f"{len(missing)} utterance(s) have no transcript and are dropped "
                        f"(use --missing_transcript asr to transcribe them), e.g. {missing[0].utt}")
        return [u for u in utts if (u.text or "").strip()]
    if how != "asr":
        raise ValueError(f"--missing_transcript: drop or asr, not '{how}'")
    from tqdm import tqdm

    from espnet_ext.whisper_asr import WhisperASR
    from espnet_ext.audio import load_mono

    asr = WhisperASR()
    for u in utts:
        u.extra.setdefault("textsource", "reference")
    for k in tqdm(range(0, len(missing), 16), desc="transcribing (batches of 16)", mininterval=10):
        batch = missing[k:k + 16]
        texts = asr.transcribe_batch([load_mono(u.wav, fs, u.start or 0.0, u.end, u.channel) for u in batch])
        for u, text in zip(batch, texts):
            u.text = text or "..."
            u.extra["textsource"] = "asr"
    logging.info(f"{len(missing)} transcript(s) made by ASR (marked 'asr' in utt2textsource)")
    return utts


_TAGS = re.compile(r"<[^<>]*>|\[[^\[\]]*\]|\|")  # <laugh> <breath> (Expresso), [LAUGHTER] (IEMOCAP), | pauses


def remove_tags(text: str) -> str:
    """The words of a transcript: non-lexical tags and marks removed. They would leak the label into the
    text (Expresso writes <laugh> only in its laughing style), as ESPnet's emotion recipes also remove."""
    return " ".join(_TAGS.sub(" ", text).replace("*", "").split())


def write_data_dir(out: Path, utts: Iterable[Utt], check_audio: bool = True) -> Dict[str, int]:
    """Write a validated Kaldi data dir. With segments, each source file becomes one recording. ``text``
    holds words only; when any transcript carried tags, ``text_tagged`` keeps every original."""
    utts = list(utts)
    tagged = {u.utt: " ".join(u.text.split()) for u in utts}
    words = {u.utt: remove_tags(u.text) for u in utts}
    if any(words[k] != t for k, t in tagged.items()):
        for u in utts:
            u.extra["text_tagged"] = tagged[u.utt]
    only_tags = [u.utt for u in utts if not words[u.utt]]
    if only_tags:
        logging.warning(f"{out}: {len(only_tags)} utterance(s) whose transcript is only tags are dropped, "
                        f"e.g. {only_tags[0]} ('{tagged[only_tags[0]]}')")
        utts = [u for u in utts if words[u.utt]]
    if not utts:
        raise CorpusError(f"{out}: no utterance left to write")
    out.mkdir(parents=True, exist_ok=True)
    segmented = any(u.start is not None or u.end is not None for u in utts)
    files: Dict[str, Dict[str, str]] = {"text": {}, "utt2spk": {}, "utt2emo": {}}
    wav_scp: Dict[str, str] = {}
    for u in utts:
        if u.utt in files["utt2spk"]:
            raise CorpusError(f"{out}: utterance id '{u.utt}' occurs twice")
        files["text"][u.utt] = words[u.utt]
        files["utt2spk"][u.utt] = u.spk
        files["utt2emo"][u.utt] = u.emo
        if segmented:
            rec = Path(u.wav).stem
            if wav_scp.get(rec, u.wav) != u.wav:
                raise CorpusError(f"two source files share the recording id '{rec}'")
            wav_scp[rec] = u.wav
            end = u.end if u.end is not None else _duration(u.wav)
            files.setdefault("segments", {})[u.utt] = f"{rec} {u.start or 0.0:.2f} {end:.2f}"
        else:
            wav_scp[u.utt] = u.wav
        if u.channel is not None:
            files.setdefault("utt2channel", {})[u.utt] = str(u.channel)
        for name, value in u.extra.items():
            files.setdefault(f"utt2{name}" if not name.startswith("text_") else name, {})[u.utt] = value
    if "utt2channel" in files:  # mono recordings beside multi-channel ones: their only channel
        for u in utts:
            files["utt2channel"].setdefault(u.utt, "0")
    for name, kv in files.items():
        if len(kv) != len(files["utt2spk"]):
            raise CorpusError(f"{out}/{name}: only {len(kv)} of {len(files['utt2spk'])} utterances have a value")
    write_kv(out / "wav.scp", wav_scp)
    for name, kv in files.items():
        write_kv(out / name, kv)
    write_kv(out / "spk2utt", spk2utt_from(files["utt2spk"]))
    return validate(out, check_audio=check_audio)


def _duration(path: str) -> float:
    import soundfile

    return soundfile.info(path).duration


def log_counts(name: str, utts: List[Utt], dropped: Counter) -> None:
    labels = Counter(u.emo for u in utts)
    logging.info(f"{name}: {len(utts)} utterances, {len({u.spk for u in utts})} speakers, labels "
                 + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
                 + (("; dropped " + ", ".join(f"{k}={v}" for k, v in sorted(dropped.items()))) if dropped else ""))
