"""Expresso: read speech in 8 styles (and, optionally, the improvised conversations) with style labels.

Transcripts: ``read_transcriptions.txt`` (``file_id<TAB>text``; ``*...*`` marks emphasis: stripped for
``text``, kept in ``text_emphasis``). Splits: ``splits/{train,dev,test}.txt`` of the release or the
published ``expresso_splits/*.txt``: a ``#`` comment line, then bare ids (``ex01_happy_00357``) or segment
lines ``id<TAB>(start,end)`` where either end may be empty (``(,60.0s)``). Audio (48 kHz, resampled by
stage 2): ``audio_48khz/read/<spk>/<style>/<base|longform>/<id>.wav``; base ids may carry a sub-style
(``ex03_default_emphasis_00010`` is style ``default``). Conversations (optional) are stereo, one channel per
speaker: ``ex01-ex02_happy-sad_001`` has ex01 (happy) on channel 1 and ex02 (sad) on channel 2.
Long recordings (the longform read passages, narration among them, and the conversations) are cut into
pieces of at most 15 s at pauses within their split range (corpora/longform.py): read passages take the
words of their passage transcript (placed by the offline Whisper's word timestamps), conversations Whisper's
own words (--missing_transcript asr; otherwise they are dropped and counted).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet_ext.corpora.common import (CorpusError, Utt, fill_missing_transcripts, log_counts, remove_tags,
                                       require_dir, write_data_dir)

READ_STYLES = ("default", "confused", "enunciated", "happy", "laughing", "sad", "whisper", "narration")
SPLIT_NAMES = {"train": "train", "dev": "valid", "test": "test"}
MAX_PIECE_S = 15.0  # the dataset authors' cut of long recordings

Segment = Tuple[Optional[float], Optional[float]]


def read_split_file(path: Path) -> List[Tuple[str, Segment]]:
    """(file id, (start, end)) per line; None for an open end. Errors name the file and line."""
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) == 1:
            entries.append((parts[0].strip(), (None, None)))
            continue
        m = re.fullmatch(r"\((\d*\.?\d*)s?,(\d*\.?\d*)s?\)", parts[1].strip().replace(" ", ""))
        if len(parts) != 2 or not m:
            raise CorpusError(f"{path}:{lineno}: expected 'id' or 'id<TAB>(start,end)', got {line!r}")
        start, end = (float(x) if x else None for x in m.groups())
        entries.append((parts[0].strip(), (start, end)))
    return entries


def strip_emphasis(text: str) -> str:
    return " ".join(text.replace("*", "").split())


def parse_id(file_id: str) -> Tuple[str, List[Tuple[str, str, int]]]:
    """('read'|'conversational', [(speaker, style, channel or 0), ...]) of a file id."""
    head, style_field = file_id.split("_")[0], file_id.split("_")[1]
    speakers = head.split("-")
    if len(speakers) == 1:
        return "read", [(speakers[0], style_field, 0)]
    styles = style_field.split("-")
    if len(styles) == 1:
        styles = styles * 2
    return "conversational", [(speakers[i], styles[i], i + 1) for i in range(2)]


def index_audio(audio_dir: Path) -> Dict[str, Path]:
    index = {}
    for p in audio_dir.rglob("*.wav"):
        if p.stem in index:
            raise CorpusError(f"two audio files named {p.stem}: {index[p.stem]} and {p}")
        index[p.stem] = p
    return index


def check_root(root: Path, splits_dir: Path) -> None:
    require_dir(root, "Expresso", "the Expresso release directory (set EXPRESSO= in db.sh)")
    if not (root / "read_transcriptions.txt").exists() or not (root / "audio_48khz").is_dir():
        raise CorpusError(f"EXPRESSO={root} does not look like Expresso: expected {root}/read_transcriptions.txt "
                          f"and {root}/audio_48khz/")
    for name in SPLIT_NAMES:
        if not (splits_dir / f"{name}.txt").exists():
            raise CorpusError(f"Expresso split file {splits_dir}/{name}.txt not found (set --splits_dir to the "
                              f"release's splits/ or the published expresso_splits/)")


def check_release_matches(split_path: Path, entries: List[Tuple[str, Segment]], texts: Dict[str, str],
                          audio: Dict[str, Path], conversational: bool) -> None:
    """Stop when more than half of a split's files have no audio, or more than half of its whole read files no
    transcript: the split files, transcripts and audio then come from different copies of the release (a
    count-only warning would drop nearly everything)."""
    used = [fid for fid, _ in entries if conversational or parse_id(fid)[0] == "read"]
    read_whole = [fid for fid, seg in entries if parse_id(fid)[0] == "read" and seg == (None, None)]
    for what, ids, known, where in (("audio", used, audio, "audio_48khz/"),
                                    ("transcript", read_whole, texts, "read_transcriptions.txt")):
        missing = [fid for fid in ids if fid not in known]
        if ids and len(missing) > len(ids) / 2:
            example = next(iter(sorted(known)), "nothing")
            raise CorpusError(f"{split_path}: {len(missing)} of {len(ids)} files have no {what} in {where}, e.g. "
                              f"the split names '{missing[0]}' where {where} has '{example}': the split files and "
                              f"the release do not match (another copy or speaker set?)")


class LazyWhisper:
    """The offline Whisper, loaded at the first long recording (a release without any loads nothing)."""

    def __init__(self):
        self._asr = None

    def words(self, x):
        if self._asr is None:
            from espnet_ext.whisper_asr import WhisperASR

            self._asr = WhisperASR()
        return self._asr.transcribe_words(x)


def long_pieces(fid: str, seg: Segment, spk: str, style: str, channel: int, wav: Path, passage: Optional[str],
                kind: str, asr: LazyWhisper, dropped: Counter, fs: int = 16000) -> List[Utt]:
    """A longform passage or one side of a conversation, within its split range ``seg``, as pieces of at
    most MAX_PIECE_S cut at pauses. Read passages take their words from the release's passage transcript
    (aligned by Whisper's word timestamps: 'reference'), conversations Whisper's own ('asr')."""
    from espnet_ext.audio import load_mono
    from espnet_ext.corpora.longform import cut_at_pauses, piece_transcripts, speech_activity

    clean = remove_tags(passage) if passage else None
    if kind == "read" and not clean:
        dropped["longform passage without a transcript"] += 1
        return []
    offset = seg[0] or 0.0
    x = load_mono(str(wav), fs, offset, seg[1], channel - 1 if channel else None)
    pieces = cut_at_pauses(speech_activity(x, fs), max_s=MAX_PIECE_S)
    words = asr.words(x) if pieces else []
    out = []
    for (a, b), text in zip(pieces, piece_transcripts(words, pieces, clean)):
        if not text:
            dropped["longform piece without words"] += 1
            continue
        start, end = round(offset + a, 2), round(offset + b, 2)
        out.append(Utt(utt_id(fid, kind, spk, channel, (start, end)), spk, str(wav), text, style, start=start, end=end,
                       channel=channel - 1 if channel else None,
                       extra={"style": style, "corpus": kind, "textsource": "reference" if clean else "asr"}))
    return out


def utt_id(fid: str, kind: str, spk: str, channel: int, seg: Optional[Segment]) -> str:
    """An utterance id: the file id (a conversation side: speaker first), its segment, its channel."""
    return ((fid if kind == "read" else f"{spk}_{fid}") + (f"_{seg_tag(seg)}" if seg is not None else "")
            + (f"_ch{channel}" if channel else ""))


def seg_tag(seg: Segment) -> str:
    """A stable utterance-id part for a segment: start/end in centiseconds ('s' and 'e' for open ends)."""
    start, end = seg
    return f"{'s' if start is None else f'{round(start * 100):06d}'}-{'e' if end is None else f'{round(end * 100):06d}'}"


def prepare(root: Path, out: Path, splits_dir: Optional[Path] = None, conversational: bool = False,
            missing_transcript: str = "drop", check_audio: bool = True) -> Dict[str, Dict[str, int]]:
    root = Path(root)
    splits_dir = Path(splits_dir) if splits_dir else root / "splits"
    check_root(root, splits_dir)
    texts = {}
    for lineno, line in enumerate((root / "read_transcriptions.txt").read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            if "\t" not in line:
                raise CorpusError(f"{root}/read_transcriptions.txt:{lineno}: expected 'file_id<TAB>text'")
            fid, text = line.split("\t", 1)
            texts[fid.strip()] = text.strip()
    audio = index_audio(root / "audio_48khz")
    asr = LazyWhisper()
    counts = {}
    for split_file, split in SPLIT_NAMES.items():
        utts: List[Utt] = []
        dropped: Counter = Counter()
        entries = read_split_file(splits_dir / f"{split_file}.txt")
        check_release_matches(splits_dir / f"{split_file}.txt", entries, texts, audio, conversational)
        for fid, seg in entries:
            kind, parts = parse_id(fid)
            if kind == "conversational" and not conversational:
                dropped["conversational (use --conversational true)"] += 1
                continue
            if fid not in audio:
                dropped["no audio"] += 1
                continue
            whole_file = seg == (None, None)
            long = kind == "conversational" or "_longform_" in fid
            if kind == "conversational" and missing_transcript != "asr":
                dropped["conversational without transcript (use --missing_transcript asr)"] += 1
                continue
            for spk, style, channel in parts:
                if long:  # cut into pieces of <= 15 s at pauses, each with its transcript
                    utts += long_pieces(fid, seg, spk, style, channel, audio[fid], texts.get(fid), kind, asr, dropped)
                    continue
                raw = texts.get(fid) if kind == "read" and whole_file else None
                utt = utt_id(fid, kind, spk, channel, None if whole_file else seg)
                extra = {"style": style, "corpus": kind}
                if raw is not None:
                    extra["text_emphasis"] = raw
                utts.append(Utt(utt, spk, str(audio[fid]), strip_emphasis(raw) if raw else None, style,
                                start=seg[0] if not whole_file else None,
                                end=seg[1] if not whole_file else None,
                                channel=channel - 1 if channel else None, extra=extra))
        utts = fill_missing_transcripts(utts, missing_transcript)
        if any(u.start is not None or u.end is not None for u in utts):
            for u in utts:  # one segments file for the whole dir: whole files become full-length segments
                if u.start is None:
                    u.start = 0.0
        for u in utts:
            u.extra.setdefault("text_emphasis", u.text)
            u.extra.setdefault("textsource", "reference")
        counts[split] = write_data_dir(out / split, utts, check_audio)
        log_counts(f"Expresso {split}", utts, dropped)
    logging.info("Expresso: style labels are the read styles " + ", ".join(READ_STYLES)
                 + (" plus the conversational ones" if conversational else ""))
    return counts
