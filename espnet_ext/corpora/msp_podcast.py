"""MSP-Podcast: data dirs per Split_Set with categorical emotion classes.

Labels: ``Labels/labels_consensus.csv`` (older releases: ``labels_concensus.csv``) with columns FileName,
EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set. Audio ``Audios/<FileName>``, transcripts
``Transcripts/<utt>.txt``. Splits: Train -> train, Development -> valid, Test1 -> test1, Test2 -> test2,
Test3 -> test3 (where present). An ``Unknown`` speaker gets a speaker id of its own per utterance, so
unknown speakers are never merged into one fake speaker that spans splits.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence

from espnet_ext.corpora.common import (CorpusError, Utt, fill_missing_transcripts, log_counts, require_dir,
                                       write_data_dir)

SPLITS = {"Train": "train", "Development": "valid", "Test1": "test1", "Test2": "test2", "Test3": "test3"}
ALL_CLASSES = ("A", "H", "S", "N", "U", "F", "D", "C", "O", "X")
DEFAULT_CLASSES = ("A", "H", "S", "N", "U", "F", "D", "C")  # O (other) and X (no agreement) dropped
REQUIRED_COLUMNS = ("FileName", "EmoClass", "SpkrID", "Split_Set")


def labels_file(root: Path) -> Path:
    require_dir(root, "MSP-Podcast", "the MSP-Podcast release directory (set MSP_PODCAST= in db.sh)")
    for name in ("labels_consensus.csv", "labels_concensus.csv"):
        if (root / "Labels" / name).exists():
            return root / "Labels" / name
    raise CorpusError(f"MSP_PODCAST={root} does not look like MSP-Podcast: expected "
                      f"{root}/Labels/labels_consensus.csv (or labels_concensus.csv) and {root}/Audios/")


def speaker_id(spkr: str, utt: str) -> str:
    spkr = spkr.strip()
    if not spkr or spkr.lower() in ("unknown", "nan"):
        return f"unk-{utt}"
    return f"spk{int(float(spkr)):05d}" if spkr.replace(".", "", 1).isdigit() else f"spk{spkr}"


def collect(root: Path, classes: Sequence[str] = DEFAULT_CLASSES) -> Dict[str, List[Utt]]:
    path = labels_file(root)
    unknown = [c for c in classes if c not in ALL_CLASSES]
    if unknown:
        raise CorpusError(f"--classes: unknown class code(s) {unknown} (known: {' '.join(ALL_CLASSES)})")
    require_dir(root / "Audios", "MSP-Podcast", f"{root}/Audios with the wav files")
    splits: Dict[str, List[Utt]] = {}
    dropped: Counter = Counter()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{path}: missing column(s) {missing}; has {reader.fieldnames}")
        for row in reader:
            lineno = reader.line_num
            short = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
            if short or None in row:
                what = f"missing field(s) {short}" if short else f"{len(row[None])} field(s) too many"
                raise CorpusError(f"{path}:{lineno}: {what} (the header has {len(reader.fieldnames)} columns)")
            name = row["FileName"].strip()
            utt = Path(name).stem
            split = SPLITS.get(row["Split_Set"].strip())
            if split is None:
                raise CorpusError(f"{path}:{lineno}: unknown Split_Set '{row['Split_Set']}'")
            emo = row["EmoClass"].strip()
            if emo not in classes:
                dropped[f"class {emo}"] += 1
                continue
            wav = root / "Audios" / name
            if not wav.exists():
                dropped["no audio"] += 1
                continue
            transcript = root / "Transcripts" / f"{utt}.txt"
            text = transcript.read_text(encoding="utf-8", errors="replace").strip() if transcript.exists() else ""
            spk = speaker_id(row["SpkrID"], utt)
            extra = {"gender": row.get("Gender", "Unknown").strip() or "Unknown"}
            for dim in ("EmoAct", "EmoVal", "EmoDom"):
                if row.get(dim, "").strip():
                    extra[dim.lower()] = row[dim].strip()
            splits.setdefault(split, []).append(Utt(f"{spk}-{utt}", spk, str(wav), text, emo, extra=extra))
    logging.info("MSP-Podcast: dropped " + (", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "nothing"))
    return splits


def prepare(root: Path, out: Path, classes: Sequence[str] = DEFAULT_CLASSES, missing_transcript: str = "drop",
            check_audio: bool = True) -> Dict[str, Dict[str, int]]:
    counts = {}
    for split, utts in sorted(collect(Path(root), classes).items()):
        without = sum(1 for u in utts if not u.text)
        logging.info(f"{split}: {without} of {len(utts)} utterances have no transcript")
        utts = fill_missing_transcripts(utts, missing_transcript)
        counts[split] = write_data_dir(out / split, utts, check_audio)
        log_counts(split, utts, Counter())
    return counts
