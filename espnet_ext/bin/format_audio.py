"""Stage 2: write every utterance as 16-bit mono WAV at one sample rate and measure its duration.

Reads ``wav.scp`` (+ ``segments``, + ``utt2channel`` for one channel of a multi-channel recording) of a
data dir and writes ``<out_dir>/wav.scp``, ``utt2dur`` and ``utt2num_samples``. Utterances outside
[min_dur, max_dur] are listed with their reason in ``<out_dir>/excluded``. Already written files are
kept, so an interrupted job resumes where it stopped, unless their source changed (``audio_sources``
records each source's size and mtime). A truncated WAV or NaN/Inf samples stop the job naming the
utterance; samples beyond full scale are clipped with a warning that counts them.
"""
import logging
import sys
from pathlib import Path

import numpy as np
import soundfile
from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.audio import check_complete, check_samples, load_mono, write_wav_atomic
from espnet_ext.datadir import DataDirError, check_id, read_channels, read_kv, write_kv


def readable_info(path: Path):
    """soundfile's info of an earlier output, or None when it is missing or unreadable (then redone)."""
    try:
        return soundfile.info(str(path)) if path.exists() else None
    except Exception:
        return None


def source_signature(value: str, start: str, end: str, channel, fs: int) -> str:
    """The source file's identity (path, size, mtime) and the cut: an output made from anything else is stale."""
    path = Path(value)
    st = path.stat() if path.is_file() else None
    stat = f"size={st.st_size},mtime_ns={st.st_mtime_ns}" if st else "command"
    return f"{stat},start={start},end={end or '-'},channel={channel},fs={fs},src={value}"


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--in_dir", type=Path, required=True, help="Kaldi data dir (or one split of it)")
    p.add_argument("--out_dir", type=Path, required=True, help="where wav.scp/utt2dur/excluded go")
    p.add_argument("--audio_dir", type=Path, required=True, help="where the WAV files go")
    p.add_argument("--fs", type=int, default=16000)
    p.add_argument("--min_dur", type=float, default=0.1, help="seconds")
    p.add_argument("--max_dur", type=float, default=30.0, help="seconds")
    args = cli.parse(p, argv)

    seg_path, chan_path = args.in_dir / "segments", args.in_dir / "utt2channel"
    try:
        wav_scp = read_kv(args.in_dir / "wav.scp", allow_empty_value=False)
        if seg_path.exists():
            segments = {u: v.split() for u, v in read_kv(seg_path).items()}
        else:
            segments = {u: [u, "0", ""] for u in wav_scp}
        channels = read_channels(chan_path) if chan_path.exists() else {}
    except DataDirError as e:
        raise SystemExit(f"format_audio: {e}") from None
    for lineno, utt in enumerate(segments, 1):  # each id names a file under --audio_dir
        check_id(utt, f"{seg_path if seg_path.exists() else args.in_dir / 'wav.scp'}:{lineno}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    args.audio_dir.mkdir(parents=True, exist_ok=True)

    sources_path = args.out_dir / "audio_sources"  # what each output was made from: a changed source is redone
    made_from = read_kv(sources_path) if sources_path.exists() else {}
    sources, clipped = {}, {}
    out_scp, utt2dur, utt2ns, excluded = {}, {}, {}, {}
    for utt, (rec, start, end) in tqdm(sorted(segments.items()), desc=f"format {args.in_dir}", mininterval=5):
        dst = args.audio_dir / f"{utt}.wav"
        try:
            sources[utt] = source_signature(wav_scp[rec], start, end, channels.get(utt), args.fs)
            info = readable_info(dst)
            if info is None or info.samplerate != args.fs or info.frames == 0 or made_from.get(utt) != sources[utt]:
                if not wav_scp[rec].endswith("|"):
                    check_complete(wav_scp[rec])
                x = load_mono(wav_scp[rec], args.fs, float(start), float(end) if end else None, channels.get(utt))
                over = check_samples(x, "audio")
                if over:
                    clipped[utt] = over
                    x = np.clip(x, -1.0, 1.0)
                write_wav_atomic(dst, x, args.fs)
                num_samples = len(x)
            else:
                num_samples = info.frames
        except Exception as e:
            raise SystemExit(f"format_audio: utterance '{utt}' (recording '{rec}' = {wav_scp.get(rec)!r}): {e}")
        dur = num_samples / args.fs
        if not args.min_dur <= dur <= args.max_dur:
            excluded[utt] = f"duration {dur:.2f}s outside [{args.min_dur}, {args.max_dur}]"
            continue
        out_scp[utt] = str(dst.resolve())
        utt2dur[utt] = f"{dur:.3f}"
        utt2ns[utt] = str(num_samples)

    for utt, n in clipped.items():
        logging.warning(f"utterance '{utt}' ({wav_scp[segments[utt][0]]}): {n} sample(s) beyond full scale, clipped")
    outputs = (("wav.scp", out_scp), ("utt2dur", utt2dur), ("utt2num_samples", utt2ns), ("excluded", excluded),
               ("audio_sources", sources))
    for name, kv in outputs:
        write_kv(args.out_dir / name, kv)
    logging.info(f"{args.in_dir}: {len(out_scp)} written, {len(excluded)} excluded by duration"
                 + (f", {len(clipped)} clipped" if clipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
