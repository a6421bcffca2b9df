"""Transcribe a data dir with Whisper (offline tiny.en by default) -> Kaldi text, for ASR cascades."""
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from espnet_ext import cli
from espnet_ext.whisper_asr import WhisperASR
from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv, write_kv


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--model", default=None, help="faster-whisper model name or CTranslate2 folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", type=cli.positive_int, default=16, help="utterances per Whisper encoder call")
    args = cli.parse(p, argv)
    asr = WhisperASR(args.model, device=args.device)
    done = read_kv(args.output) if args.output.exists() else {}
    wav_scp = read_kv(args.data_dir / "wav.scp")
    todo = [u for u in wav_scp if u not in done]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for k in tqdm(range(0, len(todo), args.batch_size), desc="asr batches", mininterval=10):
        utts = todo[k:k + args.batch_size]
        texts = asr.transcribe_batch([load_mono(wav_scp[u], 16000) for u in utts], batch_size=args.batch_size)
        done.update({u: t or "..." for u, t in zip(utts, texts)})
        partial = args.output.with_name(args.output.name + ".tmp")  # resumable after each batch
        write_kv(partial, {u: done[u] for u in wav_scp if u in done})
        partial.replace(args.output)
    write_kv(args.output, {u: done[u] for u in wav_scp})
    logging.info(f"{args.output}: {len(wav_scp)} transcripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
