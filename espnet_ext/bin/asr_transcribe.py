"""Transcribe a data dir with Whisper (offline tiny.en by default) -> Kaldi text, for ASR cascades."""
import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from espnet_ext.asr import WhisperASR
from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv, write_kv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data_dir", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--model", default=None, help="faster-whisper model name or CTranslate2 folder")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asr = WhisperASR(args.model, device=args.device)
    done = read_kv(args.output) if args.output.exists() else {}
    wav_scp = read_kv(args.data_dir / "wav.scp")
    for utt in tqdm([u for u in wav_scp if u not in done], desc="asr", mininterval=10):
        done[utt] = asr.transcribe(load_mono(wav_scp[utt], 16000)) or "..."
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_kv(args.output, {u: done[u] for u in wav_scp})
    logging.info(f"{args.output}: {len(wav_scp)} transcripts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
