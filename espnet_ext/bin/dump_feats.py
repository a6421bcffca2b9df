"""Stage 3: the training config's frozen frontend run once over a data dir -> feats.scp (kaldiio ark).

A frozen pre-trained frontend (Whisper's encoder) costs more per step than the small encoder trained on
it; dumped, training reads its output instead of recomputing it every epoch. Each utterance is encoded
alone, so a file's features are the ones the same frontend gives it inside the model (the demo, stage 7).
Writes OUT/feats.scp, OUT/feats.ark, OUT/feats_shape (``utt frames,dims``) and OUT/frontend.yaml (which
frontend made them: a dump made by another one is redone, not reused). Up to date: nothing is recomputed.

    python -m espnet_ext.bin.dump_feats --train_config conf/train.yaml --data_dir dump/raw/train --out_dir dump/feats/train
    python -m espnet_ext.bin.dump_feats --dir_name conf/train.yaml    # feats_<frontend>_<hash of its options>
"""
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from espnet_ext import cli, yaml_file
from espnet_ext.audio import load_mono
from espnet_ext.datadir import read_kv, write_atomic, write_kv
from espnet_ext.inference import FS  # the frontends' rate (stage 2 resamples to it)


def frontend_stamp(config: Path) -> dict:
    """What decides the features: the frontend's name and options (paths as written)."""
    conf = yaml_file.load(config) or {}
    return {"frontend": conf.get("frontend"), "frontend_conf": conf.get("frontend_conf") or {}}


def dir_name(config: Path) -> str:
    """``feats_<frontend>_<8 hex digits of its options>``: configs that differ in frontend_conf (an ablation
    without pitch) never share, or overwrite, one dump."""
    stamp = frontend_stamp(config)
    digest = hashlib.sha1(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:8]
    return f"feats_{stamp['frontend']}_{digest}"


def is_up_to_date(out_dir: Path, keys, stamp: dict) -> bool:
    scp, made_by = out_dir / "feats.scp", out_dir / "frontend.yaml"
    return (scp.is_file() and made_by.is_file() and yaml_file.load(made_by) == stamp
            and set(read_kv(scp)) == set(keys))


@torch.no_grad()
def dump(frontend, wav_scp: dict, out_dir: Path) -> int:
    """Write every utterance's features; into temporary files first, renamed at the end (a killed job
    leaves no half dump that looks whole)."""
    import kaldiio

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = f".tmp{os.getpid()}"
    ark, scp = out_dir / f"feats.ark{tmp}", out_dir / f"feats.scp{tmp}"
    shapes = {}
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt in tqdm(sorted(wav_scp), desc=f"dump {out_dir}", mininterval=10):
            try:
                wave = torch.from_numpy(load_mono(wav_scp[utt], FS))
            except Exception as e:
                raise SystemExit(f"{out_dir}: utterance '{utt}' ({wav_scp[utt]}): cannot read audio: {e}")
            feats, lengths = frontend(wave[None], torch.tensor([len(wave)]))
            x = feats[0, : int(lengths[0])].float().numpy()
            writer(utt, x)
            shapes[utt] = f"{x.shape[0]},{x.shape[1]}"
    ark.rename(out_dir / "feats.ark")
    # the scp names the temporary ark: point it at the final one
    lines = scp.read_text().replace(f"feats.ark{tmp}:", "feats.ark:")
    (out_dir / "feats.scp").write_text(lines)
    scp.unlink()
    write_kv(out_dir / "feats_shape", shapes)
    return len(shapes)


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--train_config", type=Path, help="the training YAML: its frontend and frontend_conf")
    p.add_argument("--data_dir", type=Path, help="data dir with wav.scp")
    p.add_argument("--out_dir", type=Path)
    p.add_argument("--dir_name", type=Path, default=None, metavar="CONFIG",
                   help="only print the name of this training YAML's dump dir (palign.sh: dump/<name>/<set>)")
    args = cli.parse(p, argv)
    if args.dir_name is not None:
        print(dir_name(args.dir_name))
        return 0
    for name in ("train_config", "data_dir", "out_dir"):
        if getattr(args, name) is None:
            p.error(f"--{name} is required (or --dir_name CONFIG alone)")
    wav_scp = read_kv(args.data_dir / "wav.scp")
    stamp = frontend_stamp(args.train_config)
    if not stamp["frontend"]:
        raise SystemExit(f"{args.train_config}: no 'frontend' to dump features of")
    if is_up_to_date(args.out_dir, wav_scp, stamp):
        logging.info(f"{args.out_dir}/feats.scp: up to date")
        return 0
    (args.out_dir / "frontend.yaml").unlink(missing_ok=True)
    from espnet_ext.tasks.palign import build_frontend

    n = dump(build_frontend(args.train_config), wav_scp, args.out_dir)
    write_atomic(args.out_dir / "frontend.yaml", yaml.safe_dump(stamp, sort_keys=False).encode())
    logging.info(f"{args.out_dir}/feats.scp: {n} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
