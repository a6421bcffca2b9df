"""Every program in espnet_ext/bin speaks one command-line style: ESPnet's config_argparse (--config sets
option defaults from YAML), --log_level, true/false for yes/no options, and no program imports another."""
import importlib
import pkgutil
import re

import pytest

import espnet_ext.bin
from conftest import ROOT

PROGRAMS = sorted(m.name for m in pkgutil.iter_modules(espnet_ext.bin.__path__))


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_program_has_help_config_and_log_level(name, capsys):
    main = importlib.import_module(f"espnet_ext.bin.{name}").main
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--config" in out and "--log_level" in out, name


def test_no_program_imports_another_and_no_store_true():
    for path in sorted((ROOT / "espnet_ext").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"from espnet_ext\.bin|import espnet_ext\.bin", text), path
        if path.parent.name == "bin":
            assert "store_true" not in text and "argparse.ArgumentParser(" not in text, path


def test_a_yaml_config_sets_option_defaults_and_unknown_keys_are_refused(tmp_path, capsys):
    from espnet_ext import cli

    conf = tmp_path / "teacher.yaml"
    conf.write_text("llm_conf:\n  name_or_path: some/llm\nprompt_conf: p.yaml\nmax_new_tokens: 7\n")
    p = cli.get_parser("doc")
    cli.add_llm_options(p)
    args = cli.parse(p, ["--config", str(conf), "--batch_size", "3", "--log_level", "warning"])
    assert cli.llm_conf(args) == {"llm_conf": {"name_or_path": "some/llm"}, "prompt_conf": "p.yaml",
                                  "batch_size": 3, "max_new_tokens": 7, "backend": "hf", "vllm_conf": {}}
    assert args.log_level == "WARNING"
    conf.write_text("llm_conf: {name_or_path: x}\nweak_judge: true\n")
    with pytest.raises(SystemExit):
        cli.parse(p, ["--config", str(conf)])
    assert "unrecognized arguments: weak_judge" in capsys.readouterr().err
    fresh = cli.get_parser("doc")  # set_defaults from a --config stay on a parser: a new one
    cli.add_llm_options(fresh)
    with pytest.raises(SystemExit, match="--prompt_conf is required"):
        cli.llm_conf(cli.parse(fresh, ["--llm_conf", "name_or_path=x"]))
