"""IEMOCAP (IEMOCAP_full_release): leave-one-session-out data dirs with categorical emotion labels.

Labels: the tab-separated summary lines of ``Session*/dialog/EmoEvaluation/*.txt``
(``[start - end]<TAB>utt<TAB>label<TAB>[V, A, D]``; per-annotator lines are ignored).
Transcripts: ``Session*/dialog/transcriptions/*.txt`` (``utt [start-end]: text``).
Audio: ``Session*/sentences/wav/<dialog>/<utt>.wav``.
Speakers: in ``Ses01F_impro01_M000`` the speaker is the *male* actor of session 1 (the letter after the
last underscore); the ``F`` in ``Ses01F`` only says who wore the motion-capture markers.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

from espnet_ext.corpora.common import CorpusError, Utt, log_counts, require_dir, write_data_dir

LABEL_MAPS: Dict[str, Dict[str, str]] = {
    # The common 4-class set: happy and excited merged.
    "4class": {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"},
    # 4 classes without excited.
    "4class_noexc": {"neu": "neu", "hap": "hap", "ang": "ang", "sad": "sad"},
    # 6 classes often used with IEMOCAP.
    "6class": {"neu": "neu", "hap": "hap", "exc": "exc", "ang": "ang", "sad": "sad", "fru": "fru"},
    # Every annotated category except no-agreement (xxx).
    "all": {k: k for k in ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth")},
}
_SUMMARY = re.compile(r"^\[(\d+\.?\d*) - (\d+\.?\d*)\]\s+(\S+)\s+(\S+)\s+\[")  # tabs, or spaces in a copy
_LOOKS_LIKE_SUMMARY = re.compile(r"^\[\s*\d")
_TRANSCRIPT = re.compile(r"^(Ses\d\d[MF]_\S+) \[[\d.]+-[\d.]+\]: ?(.*)$")


def speaker_of(utt: str) -> str:
    """Ses01F_impro01_M000 -> Ses01M (session + the gender letter after the last underscore)."""
    m = re.match(r"^Ses(\d\d)[MF]_.*_([MF])\d+$", utt)
    if not m:
        raise CorpusError(f"IEMOCAP: utterance id '{utt}' does not have the form SesNN[MF]_..._[MF]NNN")
    return f"Ses{m.group(1)}{m.group(2)}"


def read_session(session_dir: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(utt -> raw label, utt -> transcript) of one session."""
    labels, texts = {}, {}
    for path in sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            m = _SUMMARY.match(line)
            if m:
                labels[m.group(3)] = m.group(4)
            elif _LOOKS_LIKE_SUMMARY.match(line):  # an utterance would vanish uncounted
                raise CorpusError(f"{path}:{lineno}: a summary line that does not parse as "
                                  f"'[START - END]<tab>UTT<tab>LABEL<tab>[V, A, D]': {line[:80]!r}")
    for path in sorted((session_dir / "dialog" / "transcriptions").glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _TRANSCRIPT.match(line.strip())
            if m:
                texts[m.group(1)] = m.group(2).strip()
    return labels, texts


def check_root(root: Path) -> None:
    require_dir(root, "IEMOCAP", "the IEMOCAP_full_release directory (set IEMOCAP= in db.sh)")
    for s in range(1, 6):
        if not (root / f"Session{s}" / "dialog" / "EmoEvaluation").is_dir():
            raise CorpusError(f"IEMOCAP={root} does not look like IEMOCAP_full_release: "
                              f"{root}/Session{s}/dialog/EmoEvaluation is missing")


def collect(root: Path, label_map: str = "4class") -> Dict[int, List[Utt]]:
    """Utterances per session, labels mapped; what is dropped is counted and logged."""
    check_root(root)
    if label_map not in LABEL_MAPS:
        raise ValueError(f"--label_map: one of {sorted(LABEL_MAPS)}, not '{label_map}'")
    mapping = LABEL_MAPS[label_map]
    sessions: Dict[int, List[Utt]] = {}
    for s in range(1, 6):
        sdir = root / f"Session{s}"
        labels, texts = read_session(sdir)
        dropped: Counter = Counter()
        utts = []
        for utt, raw in sorted(labels.items()):
            if raw not in mapping:
                dropped[f"label {raw}"] += 1
                continue
            dialog = utt.rsplit("_", 1)[0]
            wav = sdir / "sentences" / "wav" / dialog / f"{utt}.wav"
            if not wav.exists():
                dropped["no audio"] += 1
                continue
            if not texts.get(utt):
                dropped["no transcript"] += 1
                continue
            spk = speaker_of(utt)
            utts.append(Utt(utt=f"{spk}-{utt}", spk=spk, wav=str(wav), text=texts[utt], emo=mapping[raw]))
        log_counts(f"IEMOCAP Session{s}", utts, dropped)
        sessions[s] = utts
    return sessions


def _dialog(utt: Utt) -> str:
    return utt.utt.split("-", 1)[1].rsplit("_", 1)[0]


def valid_dialogs(utts: List[Utt], valid_ratio: float) -> set:
    """A deterministic share of the dialogs (at least one), picked by hash: a dialog is never split."""
    dialogs = sorted({_dialog(u) for u in utts}, key=lambda d: hashlib.sha1(d.encode()).hexdigest())
    return set(dialogs[:max(1, round(valid_ratio * len(dialogs)))])


SPLITS = ("loso", "espnet")


def prepare(root: Path, out: Path, test_session: int = 5, label_map: str = "4class", valid_ratio: float = 0.1,
            suffix: str = "", check_audio: bool = True, split: str = "loso") -> Dict[str, Dict[str, int]]:
    """data/{train,valid,test}<suffix>. ``loso``: test = one session, valid = ~valid_ratio of the others'
    dialogs. ``espnet``: ESPnet's IEMOCAP recipe split, for comparison with its numbers: train Ses01-03 and
    the female speaker of Ses04, valid the male speaker of Ses04, test Ses05 (``test_session`` must be 5)."""
    if test_session not in range(1, 6):
        raise ValueError(f"--test_session must be 1..5, not {test_session}")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {SPLITS}, not {split!r}")
    if split == "espnet" and test_session != 5:
        raise ValueError("--split espnet tests on Session 5 (ESPnet's split); --test_session must be 5")
    sessions = collect(Path(root), label_map)
    rest = [u for s, us in sessions.items() if s != test_session for u in us]
    if split == "espnet":
        splits = {"train": [u for u in rest if u.spk != "Ses04M"], "valid": [u for u in rest if u.spk == "Ses04M"],
                  "test": sessions[test_session]}
    else:
        valid = valid_dialogs(rest, valid_ratio)
        splits = {"train": [u for u in rest if _dialog(u) not in valid],
                  "valid": [u for u in rest if _dialog(u) in valid],
                  "test": sessions[test_session]}
    counts = {}
    for name, utts in splits.items():
        counts[name + suffix] = write_data_dir(out / f"{name}{suffix}", utts, check_audio)
        log_counts(f"{name}{suffix} (test session {test_session})", utts, Counter())
    logging.info(f"IEMOCAP: label map {label_map}: {LABEL_MAPS[label_map]}")
    return counts
