"""Can the frozen LLM of these configs be loaded here, and the SSL frontend's checkpoint? palign.sh asks
before the jobs of stages 4-6 start, so that a hub id that cannot be reached (offline, a gated model such as
Llama-3, no login), a local folder without its weights, a moved SSL checkpoint or an s3prl upstream that
would download offline stops at once, with what to do, instead of in every job's log after a wait.

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


SSL_HOW = ("make a local checkpoint where the hub can be reached (s3prl downloads it once into "
           "~/.cache/s3prl), then set frontend_conf.frontend_conf: {upstream: <name>_local, path_or_url: FILE} "
           "(e.g. wavlm_local, hubert_local; docs/recipes.md, 'Swapping the frontend')")


class _Found(Exception):
    """Raised instead of s3prl's download: the checkpoint URL and where s3prl caches it."""

    def __init__(self, url: str, path: Path):
        super().__init__(url)
        self.url, self.path = url, path


def upstream_checkpoint(name: str):
    """(url, cache path) of the checkpoint an s3prl hub upstream downloads, or None if it downloads none
    (fbank, mel). Its hub function is called with s3prl's download replaced by a stop: nothing is
    fetched or loaded."""
    import s3prl.util.download as download
    from s3prl import hub

    if not hasattr(hub, name):
        raise KeyError(name)

    def stop(filepath, url, *args, **kwargs):
        raise _Found(url, Path(filepath))
    real, download._download = download._download, stop
    try:
        getattr(hub, name)()
    except _Found as found:
        return found.url, found.path
    except Exception:  # noqa: BLE001 - built without a download: nothing to check
        return None
    finally:
        download._download = real
    return None


def ssl_problem(config: Path, conf: dict) -> str:
    """Why the s3prl frontend of a training config cannot be built here, or ''."""
    if conf.get("frontend") != "s3prl":
        return ""
    s3 = ((conf.get("frontend_conf") or {}).get("frontend_conf") or {})
    name, path = s3.get("upstream"), s3.get("path_or_url")
    where = f"{config}: frontend_conf.frontend_conf"
    if not name:
        return f"{where} names no upstream"
    if path and "://" not in str(path):
        if not expand(str(path), f"{where}.path_or_url").exists():
            return f"{where}.path_or_url '{path}' does not exist (from {Path.cwd()}): moved or never made? {SSL_HOW}"
        return ""
    if str(name).endswith("_local"):
        return f"{where}: upstream '{name}' reads a local checkpoint: give it as path_or_url"
    try:
        found = upstream_checkpoint(str(name))
    except KeyError:
        return f"{where}: upstream '{name}' is not an s3prl upstream (s3prl.hub has no such name)"
    if found is None or found[1].exists():
        return ""
    url, cache = found
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return f"{where}: upstream '{name}' would download {url} (not in {cache.parent}) and HF_HUB_OFFLINE is set; {SSL_HOW}"
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10).close()
    except Exception as e:  # noqa: BLE001 - no network, a proxy, a timeout: the same advice
        return f"{where}: upstream '{name}' would download {url}, which cannot be reached ({type(e).__name__}); {SSL_HOW}"
    return ""


def check(config: Path) -> str:
    """'' if the LLM of ``config`` can be loaded, else the reason (naming the file and key)."""
    conf = yaml_file.load(config) or {}
    ssl = ssl_problem(config, conf)
    if ssl:
        return ssl
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
