"""Bad input to a trained model (palign_inference, a received model dir, the training config): each case
must end in an error that names the file, option or utterance and says what to do, or in a correct result.
The model is conftest's tiny_model (one epoch); a case that edits a model dir edits its own copy."""
import re
import shutil

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_ext.bin import palign_inference
from espnet_ext.tasks.palign import PalignTask


def _infer(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        palign_inference.main(list(argv))
    assert e.value.code not in (0, None)
    return capsys.readouterr().err


@pytest.fixture
def wav(tmp_path):
    def make(seconds, name="x.wav"):
        path = tmp_path / name
        n = int(seconds * 16000)
        soundfile.write(path, 0.1 * np.sin(np.arange(n) * 0.07).astype(np.float32), 16000)
        return path
    return make


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    """A copy of the trained dir whose config.yaml a case may edit."""
    d = tmp_path / "received"
    shutil.copytree(tiny_model, d)
    return d


def _edit_config(model_dir, edit):
    path = model_dir / "config.yaml"
    conf = yaml.safe_load(path.read_text())
    edit(conf)
    path.write_text(yaml.safe_dump(conf))


@pytest.mark.parametrize("seconds", [0.05, 0.01])
def test_a_too_short_wav_says_how_long_the_model_needs(tiny_model, wav, capsys, seconds):
    err = _infer(capsys, "--model_dir", str(tiny_model), "--wav", str(wav(seconds)))
    assert re.search(rf"--wav .*x.wav: {seconds:.2f} s long; this model needs at least 0\.\d\d s of audio", err), err


def test_the_shortest_wav_the_model_takes_is_answered(tiny_model, wav, capsys):
    from espnet_ext.inference import load_model, min_speech_samples

    n = min_speech_samples(load_model(tiny_model, None, "cpu")[0])
    assert palign_inference.main(["--model_dir", str(tiny_model), "--wav", str(wav(n / 16000)),
                                  "--max_new_tokens", "2"]) == 0
    assert capsys.readouterr().out.strip()


def test_a_wav_over_max_seconds_is_refused_before_decoding(tiny_model, wav, capsys):
    err = _infer(capsys, "--model_dir", str(tiny_model), "--wav", str(wav(1.0)), "--max_seconds", "0.5")
    assert re.search(r"1\.0 s long, more than the limit of 0\.5 s .*raise --max_seconds", err), err
    assert "--max_seconds 0.0: must be more than 0" in _infer(
        capsys, "--model_dir", str(tiny_model), "--wav", str(wav(1.0)), "--max_seconds", "0")


def test_a_data_dir_utterance_too_short_is_named(tiny_model, wav, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"u1 {wav(1.0, 'a.wav')}\nu2 {wav(0.01, 'b.wav')}\n")
    with pytest.raises(SystemExit, match=r"wav.scp: utterance 'u2' is 0\.01 s long; this model needs at least"):
        palign_inference.main(["--model_dir", str(tiny_model), "--data_dir", str(d), "--output", str(tmp_path / "o")])


@pytest.mark.parametrize("option,value", [("--max_new_tokens", "0"), ("--max_new_tokens", "-1"),
                                          ("--batch_size", "0")])
def test_counts_below_one_are_refused_and_write_nothing(tiny_model, wav, tmp_path, capsys, option, value):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"u1 {wav(1.0)}\n")
    out = tmp_path / "replies"
    err = _infer(capsys, "--model_dir", str(tiny_model), "--data_dir", str(d), "--output", str(out), option, value)
    assert f"argument {option}: {value}: must be at least 1" in err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a CUDA GPU")
def test_cuda_on_a_machine_without_a_gpu(tiny_model, wav, capsys):
    err = _infer(capsys, "--model_dir", str(tiny_model), "--wav", str(wav(1.0)), "--device", "cuda")
    assert "--device cuda: this machine has no CUDA GPU that torch can use; give --device cpu" in err
    assert "--device gpu: give cpu, cuda or cuda:N" in _infer(
        capsys, "--model_dir", str(tiny_model), "--wav", str(wav(1.0)), "--device", "gpu")


def test_a_prompt_with_two_speech_marks(tiny_model, wav, capsys):
    err = _infer(capsys, "--model_dir", str(tiny_model), "--wav", str(wav(1.0)), "--prompt", "<speech> and <speech>?")
    assert "'<speech>' marks where the one recording goes; give it once" in err


def test_a_model_whose_llm_folder_is_gone_is_named_before_anything_loads(model_copy, wav, tmp_path, capsys):
    gone = tmp_path / "moved_llm"
    _edit_config(model_copy, lambda c: c["llm_conf"].update(name_or_path=str(gone)))
    err = _infer(capsys, "--model_dir", str(model_copy), "--wav", str(wav(1.0)))
    assert f"llm_conf.name_or_path is '{gone}', which does not exist" in err and "config.yaml" in err


def test_a_model_dir_with_relative_paths_works_from_any_directory(tiny_model, tiny_llm, wav, tmp_path, capsys,
                                                                  monkeypatch):
    """config.yaml holds the LLM path relative to the recipe dir where training ran (downloads/llm/...)."""
    recipe = tmp_path / "recipe"
    shutil.copytree(tiny_llm, recipe / "downloads" / "llm" / "tiny")
    model = recipe / "exp" / "palign"
    shutil.copytree(tiny_model, model)
    _edit_config(model, lambda c: c["llm_conf"].update(name_or_path="downloads/llm/tiny"))
    x = wav(1.0)
    monkeypatch.chdir(recipe)
    assert palign_inference.main(["--model_dir", str(model), "--wav", str(x), "--max_new_tokens", "3"]) == 0
    from_recipe = capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # elsewhere: the same reply
    assert palign_inference.main(["--model_dir", "recipe/exp/palign", "--wav", str(x), "--max_new_tokens", "3"]) == 0
    assert capsys.readouterr().out == from_recipe
    _edit_config(model, lambda c: c["llm_conf"].update(name_or_path="downloads/llm/missing"))
    err = _infer(capsys, "--model_dir", "recipe/exp/palign", "--wav", str(x))
    assert "llm_conf.name_or_path is 'downloads/llm/missing', which exists neither from here" in err


def test_a_received_config_with_a_misspelt_encoder_key(model_copy, wav, capsys):
    _edit_config(model_copy, lambda c: c["encoder_conf"].update(num_blokcs=1))
    with pytest.raises(SystemExit, match=r"config.yaml: encoder_conf: TransformerEncoder has no option 'num_blokcs' "
                                         r"\(it takes: .*num_blocks"):
        palign_inference.main(["--model_dir", str(model_copy), "--wav", str(wav(1.0))])


def test_a_received_config_with_an_unknown_s3prl_upstream(model_copy, wav):
    _edit_config(model_copy, lambda c: c["frontend_conf"]["frontend_conf"].update(upstream="fbankk"))
    with pytest.raises(SystemExit, match=r"frontend_conf: s3prl has no upstream 'fbankk' \(did you mean .*fbank"):
        palign_inference.main(["--model_dir", str(model_copy), "--wav", str(wav(1.0))])


def test_a_received_config_with_a_yaml_tag(model_copy, wav, capsys):
    path = model_copy / "config.yaml"
    path.write_text(path.read_text() + "evil: !!python/object/apply:os.system ['touch /tmp/paraalign_owned']\n")
    err = _infer(capsys, "--model_dir", str(model_copy), "--wav", str(wav(1.0)))
    assert f"{path}: line " in err and "tag" in err


def test_training_config_with_a_yaml_tag_or_a_misspelt_key(tmp_path, capsys, tiny_llm):
    from espnet_ext.bin import palign_train

    bad = tmp_path / "train.yaml"
    bad.write_text("encoder: transformer\nllm_conf: !!python/name:os.system\n")
    with pytest.raises(SystemExit):
        palign_train.main(["--config", str(bad), "--output_dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert f"--config {bad}: line 2" in err and "tag" in err


@pytest.mark.parametrize("value", ["__import__('os').system('touch {flag}')",
                                   "num_blocks=!!python/object/apply:os.system ['touch {flag}']"])
def test_a_conf_option_value_is_data_never_code(tmp_path, capsys, value):
    """ESPnet's NestedDictAction eval()s an option's string and reads it with YAML's full Loader; the
    task's parser reads plain data only (palign.sh builds such options from a config's pretrain_conf)."""
    from espnet_ext.bin import palign_train

    flag = tmp_path / "ran"
    with pytest.raises(SystemExit):
        palign_train.main(["--encoder_conf", value.format(flag=flag), "--output_dir", str(tmp_path / "o")])
    assert "--encoder_conf" in capsys.readouterr().err and not flag.exists()


def test_an_unparsed_or_misspelt_loss_option_is_refused(tmp_path, tiny_llm, small_corpus):
    """'{weight:1.0}' is YAML for the key "weight:1.0" (no space after the colon): left unread, the default
    weight would train in its place, as a pre-training's CTC weight once did (palign.sh's conf_args)."""
    from conftest import tiny_training_cmd

    for option, value, said in (("--ctc_conf", "{weight:1.0}", "ctc_conf: unknown key(s) ['weight:1.0'] (known: "
                                 "weight, negatives); a YAML mapping needs a space after ':'"),
                                ("--aux_conf", "wieght=0.5", "aux_conf: unknown key(s) ['wieght'] (known: weight, labels)")):
        with pytest.raises(ValueError) as e:
            PalignTask.main(cmd=tiny_training_cmd(tiny_llm, small_corpus, tmp_path / option.strip("-")) + [option, value])
        assert str(e.value) == said
