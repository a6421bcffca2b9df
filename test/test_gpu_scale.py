"""bench/gpu_scale.py (the real-scale GPU benchmark) at toy shapes on the CPU, so that it cannot rot before a
GPU machine runs it: same build path (random-weight LLM from a config.json, a local WavLM checkpoint, the real
training config), same measurements."""
import re
import sys

from conftest import ROOT, run


def test_gpu_scale_benchmark_runs_at_tiny_shapes(tmp_path):
    out = run([sys.executable, str(ROOT / "bench" / "gpu_scale.py"), "--scale", "tiny", "--device", "cpu",
               "--batch_sizes", "2", "3", "--seconds", "1", "--reply_tokens", "8", "--decode_tokens", "4",
               "--repeats", "1", "--workdir", str(tmp_path)]).stdout
    assert "gradient checkpointing True" in out  # as the real config says
    rows = re.findall(r"^\| training step .*\| (\d+) \| (\d+) \| ([\d.]+) \| ([\d,]+) \| ([\d.]+) GiB", out, re.M)
    assert [r[0] for r in rows] == ["2", "3"]
    assert all(float(r[2]) > 0 and int(r[3].replace(",", "")) > 0 for r in rows)
    # 1 s of speech at 12.5 tokens/s, the prompt around it and 8 reply tokens
    assert all(int(r[1]) > 8 + 12 for r in rows)
    assert re.search(r"^\| greedy decoding \(4 new tokens\) \| 3 \|", out, re.M)
    assert (tmp_path / "wavlm.pt").exists() and (tmp_path / "llm" / "config.json").exists()


def test_real_classifier_config_header_is_what_the_script_prints_and_the_config_builds(tmp_path):
    """conf/cls_wavlm_large.yaml (stage 11 at real scale): its parameter line is bench/cls_params.py's
    output, and ESPnet's cls task builds it (a tiny local WavLM standing in for the weights)."""
    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    import cls_params
    import gpu_scale

    config = ROOT / "conf" / "cls_wavlm_large.yaml"
    assert f"#   {cls_params.summary(str(config))}\n" in config.read_text()
    conf = yaml.safe_load(config.read_text())
    conf["frontend_conf"]["frontend_conf"] = {"upstream": "wavlm_local",
                                              "path_or_url": str(gpu_scale.make_wavlm_checkpoint(tmp_path, "tiny"))}
    conf["preencoder_conf"]["input_size"] = gpu_scale.TINY_WAVLM["encoder_embed_dim"]
    tiny = tmp_path / "cls.yaml"
    tiny.write_text(yaml.safe_dump(conf))
    (tmp_path / "labels").write_text("ang\nhap\nneu\nsad\n<unk>\n")
    import argparse

    import espnet2.tasks.cls as cls_task
    from espnet_ext.palign.frontend import register_in_espnet_task

    register_in_espnet_task(cls_task)
    parser = cls_task.CLSTask.get_parser()
    args = parser.parse_args(["--config", str(tiny), "--token_list", str(tmp_path / "labels")])
    model = cls_task.CLSTask.build_model(argparse.Namespace(**vars(args)))
    assert args.freeze_param == ["frontend.upstream"]
    assert [n for n, _ in model.named_parameters() if n.startswith("frontend.upstream")]  # what it freezes
    trainable = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("frontend.upstream"))
    assert 11e6 < trainable < 13e6  # the real-size preencoder, encoder and head on the tiny WavLM

def test_real_training_configs_headers_are_what_the_script_prints_and_the_configs_build(tmp_path, tiny_llm):
    """Every corpus's real-scale configs (ParaAlign's and the paper's): the header's parameter and memory lines
    are bench/palign_params.py's output; the task builds them (the tiny LLM and a tiny local WavLM standing in
    for the weights), with the preencoder taking the frontend's width and the header's encoder size."""
    import re

    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_scale
    import palign_params

    from espnet_ext.tasks.palign import PalignTask

    configs = sorted(ROOT.glob("egs/*/palign1/conf/train*_wavlm_large_llama3_8b.yaml"))
    assert len(configs) == 8 and len({c.parent.parent.parent.name for c in configs}) == 4
    for config in configs:
        text = config.read_text()
        for line in palign_params.summary(str(config)).splitlines():
            assert f"#   {line}\n" in text, (config, line)
        conf = yaml.safe_load(text)
        assert conf["preencoder"] == "linear" and "input_size" not in conf["preencoder_conf"]
        assert ("aux_conf" in conf) == (conf["tasks"] != ["response"]), config  # ParaAlign's, or the paper's
    for config in (c for c in configs if "msp_podcast" in str(c)):
        conf = yaml.safe_load(config.read_text())
        conf["llm_conf"] = {"name_or_path": str(tiny_llm), "dtype": "float32"}
        conf["frontend_conf"]["frontend_conf"] = {"upstream": "wavlm_local", "path_or_url": str(
            gpu_scale.make_wavlm_checkpoint(tmp_path, "tiny"))}
        conf.pop("specaug", None)
        conf["normalize"] = "utterance_mvn"  # global_mvn's statistics come from stage 5
        if isinstance((conf.get("aux_conf") or {}).get("labels"), str):
            conf["aux_conf"]["labels"] = ["angry", "happy", "neutral", "sad"]
        conf["prompt_conf"] = str(ROOT / "conf" / "prompts" / "emotion.yaml")
        path = tmp_path / config.name
        path.write_text(yaml.safe_dump(conf))
        model = PalignTask.build_model(PalignTask.get_parser().parse_args(["--config", str(path)]))
        assert model.preencoder.linear_out.in_features == gpu_scale.TINY_WAVLM["encoder_embed_dim"]
        encoder = sum(p.numel() for p in model.encoder.parameters()) / 1e6
        assert f"encoder {encoder:.2f} M" in config.read_text() and model.adapter.stack == 2
        assert re.search(r"GPU memory ~\d+ GiB", config.read_text())
