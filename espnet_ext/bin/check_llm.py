"""Can the frozen LLM of these configs be loaded here? palign.sh asks before the jobs of stages 4-6 start,
so that a hub id that cannot be reached (offline, a gated model such as Llama-3, no login) or a local
folder without its weights stops at once, with what to do, instead of in every job's log after a wait.

    python -m espnet_ext.bin.check_llm conf/teacher_llama3_8b.yaml [more YAMLs ...]
"""
import os
import sys
from pathlib import Path

from espnet_ext import cli, yaml_file
from espnet_ext.envpath import expand
from espnet_ext.palign.llm import check_local_path

WEIGHTS = ("*.safetensors", "*.bin", "*.pt")
HOW = ("download it once where the hub can be reached (huggingface-cli download <id> --local-dir DIR) and "
       "set llm_conf.name_or_path to DIR, or run with a hub cache that has it (HF_HOME)")


def local_problem(folder: Path, random_init: bool) -> str:
    """What a local LLM folder lacks, or ''."""
    if not (folder / "config.json").is_file():
        return "has no config.json (not an HF model folder; the recipes make one with local/prepare_llm.sh)"
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return "has no tokenizer files"
    if not random_init and not any(any(folder.glob(p)) for p in WEIGHTS):
        return "has no weight files (*.safetensors, *.bin)"
    return ""


def hub_problem(name: str) -> str:
    """Why the hub id ``name`` cannot be loaded here, or ''. Reads config.json only (seconds, not GBs)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return ""  # cached: transformers loads it without the network
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return f"is not in the hub cache and HF_HUB_OFFLINE is set; {HOW}"
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    try:
        hf_hub_download(name, "config.json")
        return ""
    except GatedRepoError:
        return ("is a gated model: accept its licence on its hub page, log in (huggingface-cli login, or set "
                f"HF_TOKEN) with that account, or {HOW}")
    except RepositoryNotFoundError:
        return "is no model on the hub (a typo, or a private one: log in with huggingface-cli login)"
    except Exception as e:  # noqa: BLE001 - no network, a proxy, a timeout: all the same advice
        return f"cannot be fetched from the hub ({type(e).__name__}: {str(e).splitlines()[0][:200]}); {HOW}"


def check(config: Path) -> str:
    """'' if the LLM of ``config`` can be loaded, else the reason (naming the file and key)."""
    conf = yaml_file.load(config) or {}
    llm = conf.get("llm_conf") or {}
    name = llm.get("name_or_path")
    where = f"{config}: llm_conf.name_or_path '{name}'"
    if not name:
        return f"{config}: no llm_conf.name_or_path"
    folder = expand(name, f"{config}: llm_conf.name_or_path")
    if folder.exists():
        problem = local_problem(folder, bool(llm.get("random_init")))
        return f"{where} {problem}" if problem else ""
    try:
        check_local_path(str(name))  # the loader's own rule for a name that can only be a folder
    except FileNotFoundError as e:
        return f"{config}: llm_conf.name_or_path (from {Path.cwd()}): {e}"
    problem = hub_problem(str(name))
    return f"{where} {problem}" if problem else ""


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("configs", type=Path, nargs="+", help="teacher, training or judge YAMLs")
    args = cli.parse(p, argv)
    problems = [problem for config in args.configs if (problem := check(config))]
    for problem in problems:
        print(f"check_llm: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
