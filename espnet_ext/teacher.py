"""Teacher targets (stage 4): unique teacher prompts, sharded resumable greedy generation by the frozen
LLM, and the merge into Kaldi text files per data dir and task. Used by bin/teacher_generate.py (the
stage) and bin/text_system.py (the text baselines, which reuse stage 4's replies).

The recipe keeps ``dump/raw`` read-only after stage 2: targets go to ``<teacher dir>/<set>/`` (``targets``
maps each data dir to its target dir), beside a ``meta.yaml`` that says which LLM, weights and prompts
wrote them, so that a second teacher never rewrites the references of the first."""
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml
from tqdm import tqdm

from espnet_ext.datadir import read_kv, write_atomic, write_kv
from espnet_ext.palign.prompts import copied_targets, teacher_prompt

FIELD_FILES = {"pitch": "utt2pitch", "pace": "utt2pace", "loudness": "utt2loudness"}
FINGERPRINT_FILE = "llm_fingerprint"  # written by the generate step: the weights that wrote the replies


def prompt_id(task: str, user: str) -> str:
    return hashlib.sha1(f"{task}\n{user}".encode()).hexdigest()[:16]


def utterance_prompts(d: Path, tasks: List[str], conf: dict, extra_dir: Optional[Path] = None):
    """(utt, task, teacher user turn) for every utterance of a data dir and every generated task. The
    measured-prosody fields (style prompts) are read from ``extra_dir`` (the target dir) or ``d``."""
    text = read_kv(d / "text")
    emo = read_kv(d / "utt2emo") if (d / "utt2emo").exists() else {}
    where = extra_dir or d
    fields = {name: read_kv(where / f) for name, f in FIELD_FILES.items() if (where / f).exists()}
    for utt in text:
        extra = {name: kv[utt] for name, kv in fields.items() if utt in kv}
        for task in tasks:
            if task not in copied_targets(conf):
                yield utt, task, teacher_prompt(conf, task, text[utt], emo.get(utt, ""),
                                                where=f"{d}: utterance '{utt}': ", extra=extra)


def target_dirs(data_dirs: Sequence[Path], root: Optional[Path]) -> Dict[Path, Path]:
    """Where each data dir's targets go: ``root/<name of the data dir>``, or the data dir itself."""
    if root is None:
        return {d: d for d in data_dirs}
    names = [d.name for d in data_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"teacher targets: data dirs share the name(s) {twice}; their targets would collide in {root}")
    return {d: root / d.name for d in data_dirs}


def prepare(data_dirs: List[Path], tasks: List[str], conf: dict, out: Path,
            targets: Optional[Dict[Path, Path]] = None) -> int:
    prompts: Dict[str, dict] = {}
    for d in data_dirs:
        for utt, task, user in utterance_prompts(d, tasks, conf, (targets or {}).get(d)):
            prompts.setdefault(prompt_id(task, user), {"id": prompt_id(task, user), "task": task, "user": user})
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "prompts.jsonl", "w", encoding="utf-8") as f:
        for pid in sorted(prompts):
            f.write(json.dumps(prompts[pid], ensure_ascii=False) + "\n")
    return len(prompts)


def read_jsonl(path: Path, repair: bool = False, torn_tail_ok: bool = False) -> List[dict]:
    """Records of a JSONL file. With ``repair`` (the file this job appends to), a half-written last line
    of a killed job is cut off, and a last record without its newline gets one, so that appending goes on
    byte-identically to an uninterrupted run. With ``torn_tail_ok`` (a file another job may be writing), a
    half-written last line is skipped and the file left alone. Any other bad line is an error."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, good_bytes = [], 0
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if not line:
            good_bytes += 0 if last else 1
            continue
        try:
            records.append(json.loads(line))
            good_bytes += len(line) + (0 if last else 1)
        except json.JSONDecodeError:
            if last and (repair or torn_tail_ok):
                if repair:
                    logging.warning(f"{path}: dropping a half-written last line (interrupted run)")
                break
            raise ValueError(f"{path}:{i + 1}: not JSON") from None
    if repair and good_bytes != len(raw):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    if repair and good_bytes and not raw[:good_bytes].endswith(b"\n"):
        with open(path, "ab") as f:
            f.write(b"\n")  # the last record was whole, its newline was not written
    return records


def known_replies(dirs: Sequence[Path]) -> Dict[str, str]:
    """Replies already generated in other generation dirs (read-only), by prompt id."""
    return {r["id"]: r["reply"] for d in dirs for path in sorted(Path(d).glob("replies.*.jsonl"))
            for r in read_jsonl(path)}


def generate(out: Path, shard: int, num_shards: int, llm_conf: dict, system, batch_size: int,
             max_new_tokens: int, device: str, known: Sequence[Path] = (), backend: str = "hf",
             vllm_conf: Optional[dict] = None) -> int:
    """``known``: other generation dirs (e.g. stage 4's) whose replies are reused, not generated again.
    ``backend``: the engine (``espnet_ext.text_generation``: hf or vllm); the files are the same."""
    from espnet_ext.text_generation import make_generator

    if not (out / "prompts.jsonl").exists():
        raise SystemExit(f"teacher_generate generate: {out / 'prompts.jsonl'} does not exist; run the prepare step first")
    prompts = read_jsonl(out / "prompts.jsonl")[shard - 1::num_shards]
    replies_path = out / f"replies.{shard}.jsonl"
    done = {r["id"] for r in read_jsonl(replies_path, repair=True)}
    # Prompts answered by an earlier run under another sharding are not generated again.
    for other in out.glob("replies.*.jsonl"):
        if other != replies_path:
            done |= {r["id"] for r in read_jsonl(other, torn_tail_ok=True) if "id" in r}  # may be running
    done |= set(known_replies(known))
    todo = [p for p in prompts if p["id"] not in done]
    logging.info(f"shard {shard}/{num_shards}: {len(prompts)} prompts, {len(done)} already answered, {len(todo)} to go")
    if not todo:
        return 0
    llm = make_generator(llm_conf, system, device, backend, vllm_conf)
    write_atomic(out / FINGERPRINT_FILE, (llm.fingerprint + "\n").encode())  # for merge's meta.yaml
    todo.sort(key=lambda p: len(p["user"]))  # similar lengths batch with little padding
    start, tokens = time.time(), 0
    with open(replies_path, "a", encoding="utf-8") as f:
        for i in tqdm(range(0, len(todo), batch_size), desc=f"teacher shard {shard}", mininterval=10):
            batch = todo[i:i + batch_size]
            replies = llm.generate([p["user"] for p in batch], max_new_tokens)
            for p, reply in zip(batch, replies):
                f.write(json.dumps({"id": p["id"], "reply": reply}, ensure_ascii=False) + "\n")
                tokens += len(llm.chat.encode(reply))
            f.flush()
    logging.info(f"shard {shard}: {len(todo)} replies, {tokens / (time.time() - start):.1f} tokens/s")
    return len(todo)


def merge(data_dirs: List[Path], tasks: List[str], conf: dict, out: Path, known: Sequence[Path] = (),
          targets: Optional[Dict[Path, Path]] = None) -> None:
    """Write ``<task>`` and ``<task>_prompt`` of every data dir and task into its target dir (``targets``;
    default the data dir itself). Every reply is looked up before anything is written, so a missing one
    leaves every target dir as it was."""
    targets = targets or {d: d for d in data_dirs}
    replies: Dict[str, str] = known_replies(known)
    for path in sorted(out.glob("replies.*.jsonl")):
        for r in read_jsonl(path):
            replies[r["id"]] = r["reply"]
    writes: List[tuple] = []  # (path, items, log line)
    for d in data_dirs:
        t = targets[d]
        for task, source in copied_targets(conf).items():
            if task in tasks:  # e.g. asr: the target is the transcript itself
                writes.append((t / task, read_kv(d / source), f"{t}/{task}: copied from {d}/{source}"))
        by_task: Dict[str, Dict[str, str]] = {}
        for utt, task, user in utterance_prompts(d, tasks, conf, t):
            by_task.setdefault(task, {})[utt] = user
        for task, users in by_task.items():
            result, empty = {}, 0
            for utt, user in users.items():
                pid = prompt_id(task, user)
                if pid not in replies:
                    raise SystemExit(f"teacher_generate merge: no reply for utterance '{utt}' of {d} (task "
                                     f"{task}, prompt {pid}); run the generate step again")
                reply = replies[pid]
                if not reply:
                    empty += 1
                    reply = "..."  # the LLM stopped at once; keep a visible token rather than an empty line
                result[utt] = reply
            # The teacher's user turn of each utterance, one line each, for the KL loss.
            writes.append((t / f"{task}_prompt", {u: v.replace("\n", "\\n") for u, v in users.items()}, None))
            writes.append((t / task, result, f"{t}/{task}: {len(result)} replies"
                           + (f" ({empty} empty, written as '...')" if empty else "")))
    for path, items, message in writes:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_kv(path, items)
        if message:
            logging.info(message)


def file_sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def write_meta(out: Path, cfg: dict, tasks: Sequence[str]) -> dict:
    """``out/meta.yaml``: which LLM (id and weights fingerprint), prompts and generation settings wrote the
    targets in ``out``. Stage 6 refuses targets whose fingerprint is not that of the LLM it trains with."""
    fp = out / FINGERPRINT_FILE
    prompts = cfg["prompt_conf"]
    prompts_sha1 = (file_sha1(Path(os.path.expandvars(prompts))) if isinstance(prompts, str)
                    else hashlib.sha1(yaml.safe_dump(prompts, sort_keys=True).encode()).hexdigest())
    meta = {"llm": cfg["llm_conf"]["name_or_path"],
            "llm_fingerprint": fp.read_text().strip() if fp.exists() else None,
            "prompt_conf": prompts if isinstance(prompts, str) else "(inline)", "prompt_conf_sha1": prompts_sha1,
            "max_new_tokens": cfg.get("max_new_tokens", 64), "backend": cfg.get("backend", "hf"),
            "tasks": list(tasks)}
    write_atomic(out / "meta.yaml", yaml.safe_dump(meta, sort_keys=False).encode())
    return meta


def check_meta(meta_path: Path, llm_fingerprint: str) -> None:
    """Refuse targets written by other weights than the LLM the encoder is aligned to."""
    meta = yaml.safe_load(Path(meta_path).read_text()) or {}
    theirs = meta.get("llm_fingerprint")
    if theirs and theirs != llm_fingerprint:
        raise SystemExit(f"{meta_path}: these targets were written by {meta.get('llm')} with weights fingerprint "
                         f"{theirs[:12]}, but the LLM being trained against has fingerprint {llm_fingerprint[:12]}; "
                         f"rerun stage 4 with this LLM or train against the LLM that wrote them")
