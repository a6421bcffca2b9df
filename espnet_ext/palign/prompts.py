"""Teacher prompts from a prompt YAML: fill {text}, {emotion} and {description} for one utterance."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

import yaml


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


def copied_targets(conf: dict) -> Dict[str, str]:
    """Tasks whose target is a data file as it is (``targets: {asr: text}``), not a teacher reply."""
    return dict(conf.get("targets") or {})


def load_prompt_conf(value) -> dict:
    """``prompt_conf`` as given: a dict, or the path of a prompt YAML (see conf/prompts/); environment
    variables in the path are expanded (recipes write ``${MAIN_ROOT}/conf/prompts/...``)."""
    if isinstance(value, dict):
        return value
    if value is None:
        raise ValueError("--prompt_conf is required (a YAML file such as conf/prompts/emotion.yaml)")
    path = Path(os.path.expandvars(str(value)))
    if not path.exists():
        raise FileNotFoundError(f"prompt config {path} not found")
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if "student" not in conf or "teacher" not in conf:
        raise ValueError(f"{path}: a prompt config needs 'student' and 'teacher' sections")
    return conf
