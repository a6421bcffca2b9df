"""Declared systems: every evaluated system writes ``system.yaml`` beside its outputs of a test set (what it
is, which model, LLM and training target, how many steps), and stage 12 builds RESULTS.md from those
files, not from folder names and log lines."""
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from espnet_ext import yaml_file
from espnet_ext.datadir import write_atomic

NAMES = {  # kind -> the row name in RESULTS.md ({tag}: the training dir's tag)
    "paraalign": "ParaAlign ({tag})",
    "semantic": "Semantic-only alignment ({tag})",
    "text_oracle": "Text-only cascade (oracle transcript)",
    "text_asr": "Text-only cascade (Whisper tiny.en ASR)",
    "cls": "Cascade: emotion classifier (ESPnet cls) + oracle transcript",
    "cls_asr": "Cascade: emotion classifier (ESPnet cls) + Whisper tiny.en ASR",
    "emotion_only": "Reference: true emotion, no words (teacher replies of that emotion to other sentences)",
    "reworded": "Reference: transcript + true emotion in other words (the teacher's emotion clause reworded)",
    "topline": "Topline: transcript + true emotion (the teacher)",
}
ORDER = list(NAMES)  # the rows' order


def config_steps(config: Path, epoch: Optional[int] = None) -> Optional[int]:
    """Training iterations of an ESPnet training up to ``epoch`` (default: its max_epoch): epochs x
    num_iters_per_epoch of its config.yaml; where an epoch is a whole pass over the data (no
    num_iters_per_epoch), the count ESPnet's Trainer logged."""
    if not config.exists():
        return None
    c = yaml_file.load(config) or {}
    epoch = epoch or c.get("max_epoch")
    if c.get("num_iters_per_epoch") and epoch:
        return int(epoch) * int(c["num_iters_per_epoch"])
    log = config.parent / "train.log"
    counts = dict(re.findall(r"(\d+)epoch results: \[train\].*?total_count=(\d+)", log.read_text(errors="replace"))) \
        if log.exists() else {}
    if str(epoch) in counts:
        return int(counts[str(epoch)])
    return int(counts[max(counts, key=int)]) if counts and epoch == c.get("max_epoch") else None


def training_steps(model_dir: Path) -> Dict[str, Optional[int]]:
    """A model's steps: its own alignment's, plus those of the semantic pre-alignment it started from (palign.sh
    writes prealign.yaml: the model dir and epoch), and of the encoder pre-training before either."""
    own = config_steps(model_dir / "config.yaml")
    prealign = yaml_file.load(model_dir / "prealign.yaml") if (model_dir / "prealign.yaml").exists() else None
    if not prealign:
        return {"train_steps": own, "pretrain_steps": config_steps(model_dir / "pretrain" / "config.yaml")}
    source = Path(prealign["model_dir"])
    pre = config_steps(source / "config.yaml", int(prealign["epoch"]))
    return {"train_steps": None if own is None or pre is None else own + pre, "prealign_steps": pre,
            "pretrain_steps": config_steps(source / "pretrain" / "config.yaml")}


def describe(kind: str, hyp_dir: Path, model_dir: Optional[Path] = None,
             teacher_dir: Optional[Path] = None) -> dict:
    """What system.yaml says of the system whose outputs of one test set are in ``hyp_dir``."""
    if kind not in NAMES:
        raise ValueError(f"unknown system kind '{kind}'; known: {ORDER}")
    info: dict = {"kind": kind}
    tag = ""
    if model_dir is not None:
        from espnet_ext.inference import find_model_file

        model_dir = Path(model_dir)
        tag = model_dir.name[len("palign_"):] if model_dir.name.startswith("palign_") else model_dir.name
        tag = tag.replace("_response_neutral", "")
        decode = Path(hyp_dir).parent.name
        if decode != "decode":  # another decode of the same model, e.g. an earlier epoch
            tag += f", {decode}"
        config = yaml_file.load(model_dir / "config.yaml") or {}
        targets = {name: path for path, name, _ in config.get("train_data_path_and_name_and_type", [])}
        info.update({"model_dir": str(model_dir), "checkpoint": find_model_file(model_dir).name,
                     "llm": (config.get("llm_conf") or {}).get("name_or_path"),
                     "training_target": targets.get("response"), **training_steps(model_dir)})
    if teacher_dir is not None and (Path(teacher_dir) / "meta.yaml").exists():
        meta = yaml_file.load(Path(teacher_dir) / "meta.yaml") or {}
        info["teacher"] = {"dir": str(teacher_dir), "llm": meta.get("llm"), "llm_fingerprint": meta.get("llm_fingerprint")}
    info["name"] = NAMES[kind].format(tag=tag)
    return info


def write(hyp_dir: Path, info: dict) -> None:
    write_atomic(Path(hyp_dir) / "system.yaml", yaml.safe_dump(info, sort_keys=False).encode())


def read_all(expdir: Path, test_sets: List[str], exclude: Optional[Path] = None
             ) -> Dict[str, Dict[str, Tuple[Path, dict]]]:
    """system name -> test set -> (scores.json, scores with the system's steps), for every system.yaml
    under ``expdir`` (not under ``exclude``) whose set is one of ``test_sets`` and that has its scores.json."""
    import json

    systems: Dict[str, Dict[str, Tuple[Path, dict]]] = {}
    for path in sorted(Path(expdir).glob("**/system.yaml")):
        if exclude is not None and Path(exclude) in path.parents:
            continue
        dset, scores_path = path.parent.name, path.parent / "scores.json"
        if dset not in test_sets or not scores_path.exists():
            continue
        info = yaml_file.load(path) or {}
        scores = json.loads(scores_path.read_text())
        for key in ("train_steps", "prealign_steps", "pretrain_steps"):
            if key in info:
                scores[key] = info[key]
        scores["_kind"] = info.get("kind")
        systems.setdefault(info["name"], {})[dset] = (scores_path, scores)
    return systems


def order(name: str, systems: Dict[str, Dict[str, Tuple[Path, dict]]]) -> int:
    kinds = [s.get("_kind") for _, s in systems.get(name, {}).values()]
    return ORDER.index(kinds[0]) if kinds and kinds[0] in ORDER else len(ORDER)
