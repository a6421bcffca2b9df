"""Every YAML file the project reads (configs, prompt files, meta.yaml, a received model's config.yaml) goes
through ``load``: the safe loader only (no tag builds an object, so no file runs code), and an error that
names the file and line instead of a ConstructorError traceback about "<unicode string>"."""
from pathlib import Path
from typing import Any, Union

import yaml


def describe(path: Union[str, Path], e: yaml.YAMLError) -> str:
    """``path: line N: what is wrong`` for a YAML parse or construction error."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
    hint = ""
    if isinstance(e, yaml.constructor.ConstructorError):
        hint = " (only plain YAML is read: a tag such as !!python/... that would build an object is refused)"
    return f"{path}: {where}{problem}{hint}"


def load(path: Union[str, Path]) -> Any:
    """The YAML document of ``path`` (None for an empty file); SystemExit naming the file if it is not one."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise SystemExit(describe(path, e)) from None
    except UnicodeDecodeError as e:
        raise SystemExit(f"{path}: not UTF-8 text ({e})") from None
