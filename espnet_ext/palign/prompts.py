"""Teacher prompts from a prompt YAML: fill {text}, {emotion} and {description} for one utterance."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from espnet_ext import yaml_file
from espnet_ext.envpath import expand


def label_words(conf: dict, label: str, where: str = "") -> Tuple[str, str]:
    """(word, description) of an utt2emo label; an unknown label is an error naming the utterance."""
    labels = conf.get("labels") or {}
    if label not in labels:
        raise KeyError(f"{where}label '{label}' has no entry under 'labels' in the prompt config "
                       f"(known: {', '.join(sorted(map(str, labels)))})")
    entry = labels[label]
    if isinstance(entry, str):
        return entry, f"The user sounds {entry}"
    return entry["word"], entry.get("description", f"The user sounds {entry['word']}")


def teacher_prompt(conf: dict, task: str, text: str, label: str = "", where: str = "",
                   extra: Optional[Dict[str, str]] = None) -> str:
    """The text-only user turn whose reply is the target of ``task``. Placeholders: {text}, {emotion},
    {description}, and any per-utterance field in ``extra`` (e.g. measured {pitch}, {pace}, {loudness})."""
    templates = conf["teacher"]
    if task not in templates:
        raise KeyError(f"prompt config has no teacher template '{task}' (has: {sorted(templates)})")
    fields: Dict[str, str] = dict(extra or {})
    fields["text"] = text.strip()
    template = templates[task]
    if "{emotion}" in template or "{description}" in template:
        fields["emotion"], fields["description"] = label_words(conf, label, where)
    try:
        return template.format(**fields)
    except KeyError as e:
        raise KeyError(f"{where}teacher template '{task}' needs the field {e}, which this data dir lacks "
                       f"(has: {sorted(fields)}); stage 4 measures pitch/pace/loudness for style prompts") from None


def reads_text(template: str) -> bool:
    """Does this student turn give the LLM the transcript ({text}) beside the speech tokens?"""
    return "{text}" in template


def student_turn(template: str, text: Optional[str] = None, where: str = "") -> str:
    """A student user turn with ``{text}`` (the transcript, for prompts that give the LLM the words beside the
    speech tokens) filled in; ``text`` is required exactly when the template has the placeholder."""
    if not reads_text(template):
        return template
    if text is None or not text.strip():
        raise ValueError(f"{where}the student prompt {template!r} needs a transcript ({{text}}), none was given")
    return template.replace("{text}", " ".join(text.split()))


def student_prompts(prompt_conf: dict, tasks, overrides: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The student user turn of each task: the prompt config's, or the training config's ``student_prompts``
    override (a variant changes one turn without a copy of the prompt file). ``{text}``, if used, must come
    after ``<speech>``: what precedes the speech is the prefix that every row shares (and the LLM caches)."""
    student = {**prompt_conf["student"], **(overrides or {})}
    missing = [t for t in tasks if t not in student]
    if missing:
        raise ValueError(f"prompt_conf has no student prompt for task(s) {missing}")
    for t in tasks:
        turn = student[t]
        if reads_text(turn) and "<speech>" in turn and turn.index("{text}") < turn.index("<speech>"):
            raise ValueError(f"student prompt of task '{t}': put {{text}} after <speech> ({turn!r})")
    return {t: student[t] for t in tasks}


def copied_targets(conf: dict) -> Dict[str, str]:
    """Tasks whose target is a data file as it is (``targets: {asr: text}``), not a teacher reply."""
    return dict(conf.get("targets") or {})


def teacher_digest(prompt_conf: dict) -> str:
    """A hash of everything in a prompt config that shapes the teacher's replies (all but the student
    turns): stage 6 compares it with the targets' meta.yaml."""
    import hashlib

    import yaml

    teacher_side = {k: v for k, v in prompt_conf.items() if k != "student"}
    return hashlib.sha1(yaml.safe_dump(teacher_side, sort_keys=True).encode()).hexdigest()


def load_prompt_conf(value) -> dict:
    """``prompt_conf`` as given: a dict, or the path of a prompt YAML (see conf/prompts/); environment
    variables in the path are expanded (recipes write ``${MAIN_ROOT}/conf/prompts/...``)."""
    if isinstance(value, dict):
        return value
    if value is None:
        raise ValueError("--prompt_conf is required (a YAML file such as conf/prompts/emotion.yaml)")
    path = expand(value, "prompt_conf")
    if not path.exists():
        raise FileNotFoundError(f"prompt config {path} not found")
    conf = yaml_file.load(path)
    if not isinstance(conf, dict) or "student" not in conf or "teacher" not in conf:
        raise ValueError(f"{path}: a prompt config needs 'student' and 'teacher' sections")
    return conf
