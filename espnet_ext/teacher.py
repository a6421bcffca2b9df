"""Teacher targets (stage 4): unique teacher prompts, sharded resumable greedy generation by the frozen
LLM, and the merge into Kaldi text files per data dir and task. Used by bin/teacher_generate.py (the
stage) and bin/text_system.py (the text baselines, which reuse stage 4's replies).

The recipe keeps ``dump/raw`` read-only after stage 2: targets go to ``<teacher dir>/<set>/`` (``targets``
maps each data dir to its target dir), beside a ``meta.yaml`` that says which LLM, weights and prompts
wrote them, so that a second teacher never rewrites the references of the first.

What decides a greedy reply besides the user turn: the system prompt and ``max_new_tokens`` are in each
prompt's id (``generation_key``), so a change makes new prompts that are generated; the chat template and
the weights are recorded in ``generation.yaml`` by the run that wrote the replies, and a run with others
stops (``check_generation``) instead of mixing replies of two LLMs."""
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml
from tqdm import tqdm

from espnet_ext import yaml_file
from espnet_ext.datadir import read_kv, write_atomic, write_kv
from espnet_ext.envpath import expand
from espnet_ext.palign.prompts import copied_targets, teacher_digest, teacher_prompt

FIELD_FILES = {"pitch": "utt2pitch", "pace": "utt2pace", "loudness": "utt2loudness"}
FINGERPRINT_FILE = "llm_fingerprint"  # written by the generate step: the weights that wrote the replies
GENERATION_FILE = "generation.yaml"  # written by the generate step: chat template and weights of the replies


def generation_key(system: Optional[str], max_new_tokens: int) -> str:
    """The settings in every prompt id: replies generated under other settings are other prompts."""
    return hashlib.sha1(json.dumps({"system": system, "max_new_tokens": int(max_new_tokens)}).encode()).hexdigest()[:8]


def prompt_id(task: str, user: str, key: str) -> str:
    return hashlib.sha1(f"{key}\n{task}\n{user}".encode()).hexdigest()[:16]


def text_sha1(text: Optional[str]) -> Optional[str]:
    return None if text is None else hashlib.sha1(text.encode()).hexdigest()


def weights_stamp(name_or_path: str) -> Optional[str]:
    """A cheap stamp of a local LLM folder's weight files (names, sizes, first MiB), so that a rerun with
    everything answered notices other weights without loading them; None for a hub id."""
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        return None
    h = hashlib.sha1()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".gguf", ".pt", ".pth"):
            with open(f, "rb") as fh:
                h.update(f"{f.relative_to(folder)}\n{f.stat().st_size}\n".encode() + fh.read(1 << 20))
    return h.hexdigest()


def generation_record(llm_conf: dict, system: Optional[str]) -> dict:
    """The chat template and weight files (cheap to read: no weights are loaded)."""
    from espnet_ext.palign.llm import ChatTokenizer

    chat = ChatTokenizer(llm_conf["name_or_path"], system)
    return {"llm": llm_conf["name_or_path"], "chat_template_sha1": text_sha1(chat.tokenizer.chat_template),
            "weights_stamp": weights_stamp(llm_conf["name_or_path"])}


def check_generation(out: Path, record: dict, what: str = "") -> None:
    """Stop when the replies in ``out`` were written with another chat template or other weights than
    ``record`` (a mix of two teachers' replies is never what a rerun means)."""
    path = out / GENERATION_FILE
    if not path.exists() or not any(out.glob("replies.*.jsonl")):
        return
    old = yaml_file.load(path) or {}
    for field, name in (("chat_template_sha1", "chat template"), ("weights_stamp", "weight files"),
                        ("llm_fingerprint", "weights (fingerprint)")):
        if field in record and old.get(field) and record[field] and old[field] != record[field]:
            raise SystemExit(f"{out}: its replies were written by {old.get('llm')} with another {name} "
                             f"({old[field][:12]}) than {record['llm']} now has ({record[field][:12]}){what}; "
                             f"to generate them again with this LLM: rm {out}/replies.*.jsonl {path} (or give "
                             f"another teacher dir), then rerun stage 4")


def utterance_prompts(d: Path, tasks: List[str], conf: dict, extra_dir: Optional[Path] = None):
    """(utt, task, teacher user turn) for every utterance of a data dir and every generated task. The
    measured-prosody fields (style prompts) are read from ``extra_dir`` (the target dir) or ``d``."""
    text = read_kv(d / "text")
    emo = read_kv(d / "utt2emo") if (d / "utt2emo").exists() else {}
    where = extra_dir or d
    fields = {name: read_kv(where / f) for name, f in FIELD_FILES.items() if (where / f).exists()}
    line = {u: i for i, u in enumerate(emo, 1)}
    for utt in text:
        extra = {name: kv[utt] for name, kv in fields.items() if utt in kv}
        for task in tasks:
            if task not in copied_targets(conf):
                try:
                    user = teacher_prompt(conf, task, text[utt], emo.get(utt, ""), extra=extra,
                                          where=f"utterance '{utt}' (utt2emo line {line.get(utt, '-')}): ")
                except KeyError as e:  # a label or field the prompt config does not know: the user's to mend
                    raise SystemExit(f"{d}: {e.args[0]}; map labels with utils/relabel_data_dir.sh or add them "
                                     f"to the prompt config") from None
                yield utt, task, user


def target_dirs(data_dirs: Sequence[Path], root: Optional[Path]) -> Dict[Path, Path]:
    """Where each data dir's targets go: ``root/<name of the data dir>``, or the data dir itself."""
    if root is None:
        return {d: d for d in data_dirs}
    names = [d.name for d in data_dirs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"teacher targets: data dirs share the name(s) {twice}; their targets would collide in {root}")
    return {d: root / d.name for d in data_dirs}


def prepare(data_dirs: List[Path], tasks: List[str], conf: dict, out: Path, key: str,
            targets: Optional[Dict[Path, Path]] = None) -> int:
    """``key``: ``generation_key`` of the settings the generate step will use."""
    prompts: Dict[str, dict] = {}
    for d in data_dirs:
        for utt, task, user in utterance_prompts(d, tasks, conf, (targets or {}).get(d)):
            pid = prompt_id(task, user, key)
            prompts.setdefault(pid, {"id": pid, "task": task, "user": user, "key": key})
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
    key = generation_key(system, max_new_tokens)
    prompts = read_jsonl(out / "prompts.jsonl")[shard - 1::num_shards]
    stale = next((p for p in prompts if p.get("key") != key), None)
    if stale:
        raise SystemExit(f"{out / 'prompts.jsonl'}: prompt {stale['id']} was prepared for other settings (system "
                         f"prompt or max_new_tokens) than this generate step's; run the prepare step again with "
                         f"the same --config")
    record = generation_record(llm_conf, system)
    check_generation(out, record)
    for other in known:
        check_generation(Path(other), record, f" (--known_replies {other})")
    replies_path = out / f"replies.{shard}.jsonl"
    done = {r["id"] for r in read_jsonl(replies_path, repair=True)}
    # Prompts answered by an earlier run under another sharding are not generated again.
    for other in out.glob("replies.*.jsonl"):
        if other != replies_path:
            done |= {r["id"] for r in read_jsonl(other, torn_tail_ok=True) if "id" in r}  # may be running
    done |= set(known_replies(known))
    todo = [p for p in prompts if p["id"] not in done]
    logging.info(f"shard {shard}/{num_shards}: {len(prompts)} prompts, {len(prompts) - len(todo)} already answered, "
                 f"{len(todo)} to go")
    if not todo:
        return 0
    llm = make_generator(llm_conf, system, device, backend, vllm_conf)
    record["llm_fingerprint"] = llm.fingerprint
    check_generation(out, record)
    write_atomic(out / GENERATION_FILE, yaml.safe_dump(record, sort_keys=False).encode())
    write_atomic(out / FINGERPRINT_FILE, (llm.fingerprint + "\n").encode())  # for merge's meta.yaml
    todo.sort(key=lambda p: len(p["user"]))  # similar lengths batch with little padding
    start, tokens, written = time.time(), 0, 0
    try:
        with open(replies_path, "a", encoding="utf-8") as f:
            for i in tqdm(range(0, len(todo), batch_size), desc=f"teacher shard {shard}", mininterval=10):
                batch = todo[i:i + batch_size]
                replies = llm.generate([p["user"] for p in batch], max_new_tokens)
                for p, reply in zip(batch, replies):
                    f.write(json.dumps({"id": p["id"], "reply": reply}, ensure_ascii=False) + "\n")
                    tokens += len(llm.chat.encode(reply))
                f.flush()
                written += len(batch)
    except OSError as e:  # a full disk: the replies written so far are kept, a rerun goes on from them
        raise SystemExit(f"teacher shard {shard}: cannot write {replies_path}: {e.strerror or e}; the "
                         f"{len(done) + written} replies before it are kept: free space and rerun (it resumes)") from None
    logging.info(f"shard {shard}: {len(todo)} replies, {tokens / (time.time() - start):.1f} tokens/s")
    return len(todo)


def merge(data_dirs: List[Path], tasks: List[str], conf: dict, out: Path, key: str, known: Sequence[Path] = (),
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
                pid = prompt_id(task, user, key)
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


def write_meta(out: Path, cfg: dict, tasks: Sequence[str], conf: dict) -> dict:
    """``out/meta.yaml``: which LLM (id, weights fingerprint, chat template), prompts and generation
    settings wrote the targets in ``out``; stage 6 compares it with what it trains with (``check_meta``)."""
    fp = out / FINGERPRINT_FILE
    gen = (yaml_file.load(out / GENERATION_FILE) or {}) if (out / GENERATION_FILE).exists() else {}
    prompts = cfg["prompt_conf"]
    prompts_sha1 = (file_sha1(expand(prompts, "prompt_conf")) if isinstance(prompts, str)
                    else hashlib.sha1(yaml.safe_dump(prompts, sort_keys=True).encode()).hexdigest())
    meta = {"llm": cfg["llm_conf"]["name_or_path"],
            "llm_fingerprint": fp.read_text().strip() if fp.exists() else None,
            "chat_template_sha1": gen.get("chat_template_sha1"),
            "prompt_conf": prompts if isinstance(prompts, str) else "(inline)", "prompt_conf_sha1": prompts_sha1,
            "teacher_prompts_sha1": teacher_digest(conf), "system": conf.get("system"),
            "max_new_tokens": cfg.get("max_new_tokens", 64), "backend": cfg.get("backend", "hf"),
            "tasks": list(tasks)}
    write_atomic(out / "meta.yaml", yaml.safe_dump(meta, sort_keys=False).encode())
    return meta


def check_meta(meta_path: Path, llm_fingerprint: str, chat_template: Optional[str] = None,
               prompt_conf: Optional[dict] = None) -> None:
    """Refuse targets written by other weights, another chat template or other teacher prompts (system
    prompt, templates, emotion words) than the LLM and prompt config the encoder is being trained with."""
    meta = yaml_file.load(meta_path) or {}
    mine = {"llm_fingerprint": llm_fingerprint, "chat_template_sha1": text_sha1(chat_template),
            "teacher_prompts_sha1": teacher_digest(prompt_conf) if prompt_conf is not None else None}
    names = {"llm_fingerprint": "weights fingerprint", "chat_template_sha1": "chat template",
             "teacher_prompts_sha1": "teacher prompts (system prompt, templates or emotion words of prompt_conf)"}
    for field, name in names.items():
        theirs = meta.get(field)
        if theirs and mine[field] and theirs != mine[field]:
            hint = (f"the system prompt was {meta.get('system')!r}, now {prompt_conf.get('system')!r}; "
                    if field == "teacher_prompts_sha1" and meta.get("system") != prompt_conf.get("system") else "")
            raise SystemExit(f"{meta_path}: these targets were written by {meta.get('llm')} with other {name} "
                             f"({theirs[:12]}) than this training uses ({mine[field][:12]}); {hint}rerun stage 4 "
                             f"with this LLM and prompt config (or train with the ones that wrote them)")
