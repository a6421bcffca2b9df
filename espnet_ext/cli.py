"""One command-line style for every program in ``bin/``, ESPnet's: ``config_argparse`` (``--config`` is a
YAML whose keys set the defaults of the options, as in ``espnet2/bin``), ``--log_level``, and yes/no options
given as ``true``/``false`` (ESPnet's ``str2bool``)."""
import argparse
import ast
import copy
import logging
from pathlib import Path
from typing import List, Optional

import yaml
from espnet2.utils import config_argparse
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str2bool

from espnet_ext import yaml_file

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"

__all__ = ["ArgumentParser", "SafeNestedDictAction", "add_llm_options", "get_parser", "llm_conf", "make_safe", "parse",
           "positive_int", "str2bool"]


class ArgumentParser(config_argparse.ArgumentParser):
    """ESPnet's parser, whose ``--config`` that is not plain YAML is a usage error naming the file and line."""

    def parse_known_args(self, args=None, namespace=None):
        config = argparse.ArgumentParser.parse_known_args(self, args, namespace)[0].config
        if config is not None and Path(config).is_file():
            try:
                yaml_file.load(config)
            except SystemExit as e:
                self.error(f"--config {e}")
        return super().parse_known_args(args, namespace)


class SafeNestedDictAction(NestedDictAction):
    """ESPnet's ``--x_conf key=value`` / ``--x_conf "{...}"`` action with plain data only: ESPnet's own
    eval()s the string and reads it with YAML's full Loader, so an option value (e.g. one that palign.sh
    builds from a received YAML) could run code. Here: Python literals or safe YAML, else a usage error."""

    def __call__(self, parser, namespace, values, option_strings=None):
        def plain(text: str, python: bool = False):  # python: a Python literal first, as ESPnet's eval()
            if python:
                try:
                    return ast.literal_eval(text)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    pass
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as e:
                parser.error(f"{'/'.join(self.option_strings)} {values!r}: not plain data "
                             f"({str(e).splitlines()[0]}; YAML tags and Python code are refused)")

        if "=" in values:  # --x_conf a.b=3 -> {'a': {'b': 3}}
            key, text = values.split("=", maxsplit=1)
            value = plain(text) if text.strip() else text
            d = indict = copy.deepcopy(getattr(namespace, self.dest, {}))
            if not isinstance(indict, dict):
                d = indict = {}
            *parents, last = key.split(".")
            for k in parents:
                if not isinstance(d.setdefault(k, {}), dict):
                    d[k] = {}
                d = d[k]
            d[last] = value
            setattr(namespace, self.dest, indict)
            return
        value = plain(values, python=True)
        if not isinstance(value, dict):
            parser.error(f"{'/'.join(self.option_strings)} {values!r}: must be a dict or key=value")
        current = getattr(namespace, self.dest, None)
        if isinstance(current, dict):
            current.update(value)
        else:
            setattr(namespace, self.dest, value)


def make_safe(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every NestedDictAction of ``parser`` (ESPnet's task parsers have many) made a SafeNestedDictAction."""
    for action in parser._actions:
        if type(action) is NestedDictAction:
            action.__class__ = SafeNestedDictAction
    return parser


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1 (a batch size, a token budget)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: must be at least 1")
    return n


def get_parser(doc: Optional[str], **kwargs) -> ArgumentParser:
    """A parser with ``--config`` (option defaults from YAML) and ``--log_level``."""
    p = ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.add_argument("--log_level", type=lambda s: s.upper(), default="INFO",
                   choices=("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"), help="the logging level")
    return p


def add_llm_options(p: argparse.ArgumentParser, generation: bool = True) -> None:
    """The frozen LLM and prompt config a program generates with (a teacher or judge YAML in ``--config``
    sets them), in the keys the training YAML uses."""
    p.add_argument("--llm_conf", action=SafeNestedDictAction, default={},
                   help="the frozen LLM: name_or_path (HF id or local folder), dtype, attn_implementation")
    p.add_argument("--prompt_conf", default=None, help="prompt YAML (teacher and student turns, label words)")
    p.add_argument("--batch_size", type=positive_int, default=16)
    if generation:
        p.add_argument("--max_new_tokens", type=positive_int, default=64)
        from espnet_ext.text_generation import BACKENDS

        p.add_argument("--backend", choices=BACKENDS, default="hf",
                       help="generation engine: transformers (CPU/GPU) or vLLM (GPU, its own environment)")
        p.add_argument("--vllm_conf", action=SafeNestedDictAction, default={},
                       help="options of vllm.LLM with --backend vllm (tensor_parallel_size, gpu_memory_utilization, ...)")


def llm_conf(args: argparse.Namespace) -> dict:
    """``--llm_conf`` and ``--prompt_conf`` as one dict, checked: a clear error instead of a KeyError."""
    if not (args.llm_conf or {}).get("name_or_path"):
        raise SystemExit("--llm_conf name_or_path=... is required (or a teacher/judge YAML given as --config)")
    if not args.prompt_conf:
        raise SystemExit("--prompt_conf is required (or a teacher/judge YAML given as --config)")
    for opt in ("batch_size", "max_new_tokens"):  # a --config YAML sets these without argparse's type check
        value = getattr(args, opt, None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SystemExit(f"--{opt} {value!r} (from {args.config or 'the command line'}): must be a whole number "
                             f"of at least 1")
    return {"llm_conf": dict(args.llm_conf), "prompt_conf": args.prompt_conf, "batch_size": args.batch_size,
            "max_new_tokens": getattr(args, "max_new_tokens", None), "backend": getattr(args, "backend", "hf"),
            "vllm_conf": dict(getattr(args, "vllm_conf", None) or {})}


def parse(p: argparse.ArgumentParser, argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` and set up logging at ``--log_level``."""
    args = p.parse_args(argv)
    logging.basicConfig(format=LOG_FORMAT)  # a no-op where a handler exists (an importing program's, pytest's)
    logging.getLogger().setLevel(args.log_level)
    return args
