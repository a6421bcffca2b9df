"""Kaldi/ESPnet data directories: read, validate, fix, subset, split and combine.

A data dir holds one ``<key> <value>`` line per utterance in each per-utterance file
(``wav.scp``, ``text``, ``utt2spk``, ``utt2emo``, ...), sorted in C-locale byte order,
plus ``spk2utt`` derived from ``utt2spk``. With ``segments``, ``wav.scp`` is keyed by
recording instead. Every error names the file, line and key so a broken corpus can be
mended by hand.
"""
from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

# Files keyed by something other than the utterance id, or not key/value files at all.
NOT_PER_UTT = {"spk2utt", "spk2gender", "reco2dur", "reco2file_and_channel", "feats_type",
               "audio_format", "emo2id", "README"}
SCP_FILES = {"wav.scp", "feats.scp"}
# Files a ParaAlign data dir must have.
REQUIRED = ("wav.scp", "text", "utt2spk", "utt2emo")


class DataDirError(ValueError):
    """A data dir is malformed; the message names file, line and key."""


def read_kv(path: Path, allow_empty_value: bool = True) -> "OrderedDict[str, str]":
    """Read a Kaldi ``key value`` file, refusing duplicate keys with file:line in the message."""
    path = Path(path)
    out: "OrderedDict[str, str]" = OrderedDict()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # an editor's invisible mark: part of the first key
                raise DataDirError(f"{path}:1: starts with a UTF-8 byte-order mark (BOM), invisible but part of "
                                   f"the first key; remove it (sed -i '1s/^\\xEF\\xBB\\xBF//' {path}) and rerun")
            try:
                line = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError as e:
                key = raw.split(maxsplit=1)[0].decode("utf-8", "replace") if raw.strip() else ""
                raise DataDirError(f"{path}:{lineno}: utterance '{key}': not UTF-8 text (byte "
                                   f"{raw[e.start]:#04x} at column {e.start + 1})") from None
            if not line.strip():
                raise DataDirError(f"{path}:{lineno}: empty line")
            parts = line.split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{path}:{lineno}: no value for key '{key}'")
            if key in out:
                raise DataDirError(f"{path}:{lineno}: duplicate key '{key}'")
            out[key] = value
    return out


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it into place, so a full disk or a kill leaves the old file
    (or none), never half a file; a failed write names the file and gives the OS's reason."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: parallel jobs may write one file
    try:
        tmp.write_bytes(data)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"cannot write {tmp}: {e.strerror}") from None
    os.replace(tmp, path)


def write_kv(path: Path, items: Dict[str, str]) -> None:
    """Write ``key value`` lines sorted in C-locale order (Python's str order is UTF-8 byte order), atomically."""
    lines = (f"{key} {items[key]}\n" if items[key] != "" else f"{key}\n" for key in sorted(items))
    write_atomic(path, "".join(lines).encode("utf-8"))


def per_utt_files(data_dir: Path) -> List[str]:
    """Names of the files in ``data_dir`` that hold one line per utterance."""
    data_dir = Path(data_dir)
    has_segments = (data_dir / "segments").exists()
    names = []
    for p in sorted(data_dir.iterdir()):
        if not p.is_file() or p.name.startswith(".") or ("." in p.name and p.name not in SCP_FILES):
            continue
        if p.name in NOT_PER_UTT or (p.name == "wav.scp" and has_segments):
            continue
        names.append(p.name)
    return names


def spk2utt_from(utt2spk: Dict[str, str]) -> "OrderedDict[str, str]":
    spk: "OrderedDict[str, List[str]]" = OrderedDict()
    for utt in sorted(utt2spk):
        spk.setdefault(utt2spk[utt], []).append(utt)
    return OrderedDict((s, " ".join(u)) for s, u in sorted(spk.items()))


def _check_sorted(path: Path, keys: Sequence[str]) -> None:
    for i in range(1, len(keys)):
        if keys[i] < keys[i - 1]:
            raise DataDirError(
                f"{path}:{i + 1}: not sorted: '{keys[i]}' comes after '{keys[i - 1]}' "
                f"(sort with LC_ALL=C, or run fix_data_dir.sh)")


def check_values(data_dir: Path, files: Dict[str, Dict[str, str]]) -> None:
    """Values with a fixed form: one speaker id per utterance (a second field would make spk2utt wrong), a
    0-based channel number (-1 would pick the last channel)."""
    for lineno, (key, value) in enumerate(files.get("utt2spk", {}).items(), 1):
        if len(value.split()) > 1:
            raise DataDirError(f"{data_dir / 'utt2spk'}:{lineno}: utterance '{key}' has {len(value.split())} "
                               f"fields after the id ('{value}'); utt2spk holds one speaker id per utterance")
    for lineno, (key, value) in enumerate(files.get("utt2channel", {}).items(), 1):
        if not value.isdigit():
            raise DataDirError(f"{data_dir / 'utt2channel'}:{lineno}: utterance '{key}': channel '{value}' is not "
                               f"a 0-based channel number (0, 1, ...)")


def read_channels(path: Path) -> Dict[str, int]:
    """``utt2channel``, each value checked (``check_values``)."""
    kv = read_kv(path)
    check_values(Path(path).parent, {"utt2channel": kv})
    return {k: int(v) for k, v in kv.items()}


def check_id(key: str, where: str) -> None:
    """Utterance and speaker ids become file names (dump/raw/<set>/audio/<utt>.wav, speaker means): an id
    with a '/' or a leading '.' could write outside the output folder."""
    if "/" in key or "\\" in key or key.startswith("."):
        raise DataDirError(f"{where}: id '{key}' contains '/' or '\\' or starts with '.'; ids name files")


def validate(data_dir: Path, required: Iterable[str] = REQUIRED, check_audio: bool = True) -> Dict[str, int]:
    """Check a data dir; raise DataDirError naming file, line and utterance. Returns counts."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataDirError(f"{data_dir}: no such data directory")
    for name in required:
        if not (data_dir / name).exists():
            raise DataDirError(f"{data_dir}: missing required file '{name}'")
    files = {name: read_kv(data_dir / name) for name in per_utt_files(data_dir)}
    check_values(data_dir, files)
    for name, kv in files.items():
        _check_sorted(data_dir / name, list(kv))
    utts = files["utt2spk"] if "utt2spk" in files else next(iter(files.values()))
    ref_name = "utt2spk" if "utt2spk" in files else next(iter(files))
    if not utts:  # every stage after this one would run on nothing and "succeed"
        raise DataDirError(f"{data_dir / ref_name}: no utterances (0 utterances in the data dir)")
    for name, kv in files.items():
        for lineno, key in enumerate(kv, 1):
            if key not in utts:
                raise DataDirError(f"{data_dir / name}:{lineno}: utterance '{key}' is not in {ref_name}")
        missing = [u for u in utts if u not in kv]
        if missing:
            raise DataDirError(f"{data_dir / name}: utterance '{missing[0]}' (in {ref_name}) is missing "
                               f"here ({len(missing)} missing in all)")
    for lineno, key in enumerate(utts, 1):
        check_id(key, f"{data_dir / ref_name}:{lineno}")
    for name in ("text", "utt2emo", "utt2spk"):
        for lineno, (key, value) in enumerate(files.get(name, {}).items(), 1):
            if not value:  # a blank transcript would become an empty teacher prompt and a training target
                raise DataDirError(f"{data_dir / name}:{lineno}: utterance '{key}' has an empty value")
            if name == "utt2spk":
                check_id(value, f"{data_dir / name}:{lineno}: speaker of '{key}'")
    if "utt2spk" in files:
        want = spk2utt_from(files["utt2spk"])
        spk2utt_path = data_dir / "spk2utt"
        if not spk2utt_path.exists():
            raise DataDirError(f"{spk2utt_path}: missing (run fix_data_dir.sh to derive it from utt2spk)")
        got = read_kv(spk2utt_path)
        if got != want:
            bad = next((s for s in set(want) | set(got) if want.get(s) != got.get(s)), "?")
            raise DataDirError(f"{spk2utt_path}: does not match utt2spk for speaker '{bad}'")
    wav_scp = read_kv(data_dir / "wav.scp", allow_empty_value=False) if (data_dir / "wav.scp").exists() else {}
    if (data_dir / "segments").exists():
        _check_segments(data_dir, files["segments"], wav_scp)
    if check_audio:
        _check_audio(data_dir / "wav.scp", wav_scp)
    counts = {"utterances": len(utts)}
    piped = sum(v.endswith("|") for v in wav_scp.values())
    if piped:
        counts["piped wav.scp entries (commands, not checked; a received wav.scp is code)"] = piped
    if "utt2spk" in files:
        counts["speakers"] = len(set(files["utt2spk"].values()))
    if "utt2emo" in files:
        counts["emotions"] = len(set(files["utt2emo"].values()))
    return counts


def _check_segments(data_dir: Path, segments: Dict[str, str], wav_scp: Dict[str, str]) -> None:
    for lineno, (utt, value) in enumerate(segments.items(), 1):
        parts = value.split()
        where = f"{data_dir / 'segments'}:{lineno}: utterance '{utt}'"
        if len(parts) != 3:
            raise DataDirError(f"{where}: expected '<utt> <recording> <start> <end>'")
        rec, start, end = parts
        try:
            start_f, end_f = float(start), float(end)
        except ValueError:
            raise DataDirError(f"{where}: start/end are not numbers: '{start} {end}'") from None
        if not 0 <= start_f < end_f:
            raise DataDirError(f"{where}: bad times {start}..{end}")
        if rec not in wav_scp:
            raise DataDirError(f"{where}: recording '{rec}' is not in wav.scp")


def _check_audio(wav_scp_path: Path, wav_scp: Dict[str, str]) -> None:
    import soundfile

    for lineno, (key, value) in enumerate(wav_scp.items(), 1):
        if value.endswith("|"):
            continue  # a command: checked when it is run by the audio-format stage
        path = value.split()[0] if not Path(value).exists() else value
        try:
            soundfile.info(path)
        except Exception as e:  # soundfile raises several types for unreadable audio
            raise DataDirError(f"{wav_scp_path}:{lineno}: utterance '{key}': unreadable audio '{path}': {e}") from None


def fix(data_dir: Path) -> Dict[str, int]:
    """Sort every file, keep utterances present in all per-utterance files, rebuild spk2utt.

    Returns, per file, how many of its lines were dropped (so nothing disappears silently)."""
    data_dir = Path(data_dir)
    names = per_utt_files(data_dir)
    files = {name: read_kv(data_dir / name) for name in names}
    check_values(data_dir, files)  # what sorting cannot mend stops before anything is rewritten
    keep = set.intersection(*(set(kv) for kv in files.values())) if files else set()
    if not keep:
        empty = [n for n, kv in files.items() if not kv]
        raise DataDirError(f"{data_dir}: no utterance is in every file"
                           + (f" ({', '.join(empty)} empty)" if empty else "") + "; nothing was changed")
    backup = data_dir / ".backup"  # as Kaldi's fix_data_dir.sh: what is rewritten is kept
    backup.mkdir(exist_ok=True)
    for name in list(files) + ["spk2utt", "wav.scp"]:
        if (data_dir / name).exists():
            shutil.copyfile(data_dir / name, backup / name)
    dropped = {}
    for name, kv in files.items():
        dropped[name] = len(kv) - len(keep)
        write_kv(data_dir / name, {k: v for k, v in kv.items() if k in keep})
    if "utt2spk" in files:
        write_kv(data_dir / "spk2utt", spk2utt_from({k: v for k, v in files["utt2spk"].items() if k in keep}))
    if (data_dir / "segments").exists() and (data_dir / "wav.scp").exists():
        recs = {v.split()[0] for k, v in files["segments"].items() if k in keep}
        wav_scp = read_kv(data_dir / "wav.scp")
        dropped["wav.scp"] = len(set(wav_scp) - recs)
        write_kv(data_dir / "wav.scp", {k: v for k, v in wav_scp.items() if k in recs})
    return dropped


def subset(src: Path, dst: Path, utts: Iterable[str]) -> int:
    """Copy ``src`` to ``dst`` keeping only ``utts``; unknown ids are an error."""
    src, dst = Path(src), Path(dst)
    utts = set(utts)
    known = set(read_kv(src / "utt2spk"))
    unknown = sorted(utts - known)
    if unknown:
        raise DataDirError(f"{src}: {len(unknown)} requested utterance(s) not in utt2spk, e.g. '{unknown[0]}'")
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file() and p.name not in per_utt_files(src) and p.name != "spk2utt":
            shutil.copy(p, dst / p.name)
    for name in per_utt_files(src):
        write_kv(dst / name, {k: v for k, v in read_kv(src / name).items() if k in utts})
    fix(dst)
    return len(utts)


def split(data_dir: Path, num: int, by_speaker: bool = False, out: Optional[Path] = None) -> List[Path]:
    """Split into ``out/{1..num}`` (default ``data_dir/split{num}``, Kaldi's place), contiguous blocks of
    utterances (or speakers). The recipe splits elsewhere so that ``dump/raw`` stays as stage 2 wrote it."""
    data_dir = Path(data_dir)
    out_root = Path(out) if out is not None else data_dir / f"split{num}"
    utt2spk = read_kv(data_dir / "utt2spk")
    units = sorted(set(utt2spk.values())) if by_speaker else list(utt2spk)
    if num < 1 or num > len(units):
        what = "speakers" if by_speaker else "utterances"
        raise DataDirError(f"{data_dir}: cannot split {len(units)} {what} into {num} parts")
    out = []
    for i in range(num):
        part = units[i * len(units) // num:(i + 1) * len(units) // num]
        utts = [u for u in utt2spk if utt2spk[u] in set(part)] if by_speaker else part
        dst = out_root / str(i + 1)
        if dst.exists():
            shutil.rmtree(dst)
        subset(data_dir, dst, utts)
        out.append(dst)
    return out


def combine(dst: Path, srcs: Sequence[Path]) -> int:
    """Merge data dirs; an utterance id present in two sources is an error, not a silent overwrite."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    with_segments = [(Path(s) / "segments").exists() for s in srcs]
    common: Optional[set] = None
    for src in srcs:
        names = set(per_utt_files(Path(src))) - {"wav.scp"}
        common = names if common is None else common & names
    if any(with_segments):
        common.add("segments")
    merged: Dict[str, Dict[str, str]] = {name: {} for name in sorted(common or [])}
    merged["wav.scp"] = {}
    origin: Dict[str, Path] = {}
    for src, segmented in zip(srcs, with_segments):
        if any(with_segments) and not segmented:  # whole files become full-length segments
            merged["wav.scp"].update(read_kv(Path(src) / "wav.scp"))
            merged["segments"].update(_whole_file_segments(Path(src) / "wav.scp"))
        else:
            merged["wav.scp"].update(read_kv(Path(src) / "wav.scp"))
        for name in merged:
            if name == "wav.scp" or (name == "segments" and not segmented):
                continue
            for key, value in read_kv(Path(src) / name).items():
                if name == "utt2spk":
                    if key in origin:
                        raise DataDirError(f"utterance '{key}' is in both {origin[key]} and {src}")
                    origin[key] = Path(src)
                merged[name][key] = value
    for name, kv in merged.items():
        write_kv(dst / name, kv)
    fix(dst)
    return len(origin)


def _whole_file_segments(wav_scp: Path) -> Dict[str, str]:
    import soundfile

    out = {}
    for utt, path in read_kv(wav_scp).items():
        if path.endswith("|"):
            raise DataDirError(f"{wav_scp}: utterance '{utt}': cannot combine a piped entry with segmented dirs")
        out[utt] = f"{utt} 0.00 {soundfile.info(path).duration:.2f}"
    return out


def relabel(data_dir: Path, mapping: Dict[str, str], drop_unmapped: bool = False) -> Dict[str, int]:
    """Map ``utt2emo`` labels into another label space, keeping the originals in ``utt2origemo``.

    A label without a mapping is an error naming the utterance, or (``drop_unmapped``) its utterances are
    dropped and counted. Returns the counts per new label (and ``dropped``)."""
    data_dir = Path(data_dir)
    emo = read_kv(data_dir / "utt2emo")
    orig = read_kv(data_dir / "utt2origemo") if (data_dir / "utt2origemo").exists() else dict(emo)
    new, dropped = {}, 0
    for lineno, (utt, label) in enumerate(emo.items(), 1):
        if label in mapping:
            new[utt] = mapping[label]
        elif drop_unmapped:
            dropped += 1
        else:
            raise DataDirError(f"{data_dir / 'utt2emo'}:{lineno}: utterance '{utt}': label '{label}' has no mapping")
    write_kv(data_dir / "utt2emo", new)
    write_kv(data_dir / "utt2origemo", {u: orig[u] for u in new})
    if dropped:
        fix(data_dir)
    counts: Dict[str, int] = {}
    for label in new.values():
        counts[label] = counts.get(label, 0) + 1
    counts["dropped"] = dropped
    return counts
