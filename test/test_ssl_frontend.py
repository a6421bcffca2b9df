"""An SSL frontend loaded from a local checkpoint (s3prl's ``wavlm_local``), the way the real configs use
WavLM-Large: a tiny random WavLM saved here stands in for the real weights, which are not on this machine."""
import pytest
import torch

from conftest import tiny_train_args
from espnet_ext.tasks.palign import PalignTask


@pytest.fixture(scope="module")
def wavlm_checkpoint(tmp_path_factory):
    """A 2-layer WavLM in the checkpoint format of the released models ({"cfg": ..., "model": ...})."""
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    cfg = {"extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 32,
           "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4,
           "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",  # 20 ms hop, as WavLM
           "relative_position_embedding": True, "num_buckets": 32, "max_distance": 64, "normalize": False}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ssl") / "tiny_wavlm.pt"
    torch.save({"cfg": cfg, "model": WavLM(WavLMConfig(cfg)).state_dict()}, path)
    return path


def test_local_wavlm_frontend_is_frozen_and_runs_at_12_5_tokens_per_second(tiny_llm, wavlm_checkpoint):
    args = tiny_train_args(tiny_llm)
    i = args.index("frontend_conf={upstream: fbank}")
    args[i] = f"frontend_conf={{upstream: wavlm_local, path_or_url: {wavlm_checkpoint}}}"
    args += ["--frontend_conf", "multilayer_feature=true",  # learnable weighted sum of layers, as the real config
             "--encoder_conf", "input_layer=conv2d2"]       # 50 -> 25 frames/s; the adapter stacks 2
    model = PalignTask.build_model(PalignTask.get_parser().parse_args(args))
    upstream = model.frontend.upstream
    assert type(upstream.upstream).__name__ == "UpstreamExpert" and model.adapter.stack == 2

    speech = 0.1 * torch.randn(2, 32000)
    lengths = torch.tensor([32000, 16000])  # 2 s and 1 s
    tokens, token_lengths = model.encode(speech, lengths)
    assert token_lengths.tolist() == pytest.approx([25, 12.5], abs=1.5) and tokens.shape[-1] == model.llm.hidden_size

    model.train()
    assert not upstream.training  # frozen SSL model: dropout stays off
    tokens.sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in upstream.parameters())
    weights = [p for n, p in model.frontend.named_parameters() if "featurizer" in n or "weights" in n]
    assert weights and all(p.grad is not None for p in weights)  # the layer weights still learn
    assert model.encoder.embed.conv[0].weight.grad.abs().sum() > 0


def _wavlm_model(tiny_llm, checkpoint):
    args = tiny_train_args(tiny_llm)
    args[args.index("frontend_conf={upstream: fbank}")] = f"frontend_conf={{upstream: wavlm_local, path_or_url: {checkpoint}}}"
    args += ["--frontend_conf", "multilayer_feature=true", "--encoder_conf", "input_layer=conv2d2"]
    torch.manual_seed(1)
    return PalignTask.build_model(PalignTask.get_parser().parse_args(args))


def test_frozen_ssl_weights_stay_out_of_model_files_and_reload_to_the_same_outputs(tiny_llm, wavlm_checkpoint,
                                                                                      tmp_path):
    """Like the LLM, the frozen upstream is rebuilt from its own checkpoint, not saved in every epoch file;
    the learnable layer weights are saved, and a file trained on other upstream weights is refused."""
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    from espnet_ext.model_io import load_state_strict

    model = _wavlm_model(tiny_llm, wavlm_checkpoint).eval()
    state = model.state_dict()
    assert not [k for k in state if k.startswith("frontend.upstream.")]
    assert "ssl_fingerprint" in state and any("featurizer" in k for k in state)
    with torch.no_grad():
        model.frontend.featurizer.weights.add_(torch.arange(3.0))  # trained layer weights must come back
    torch.save(model.state_dict(), tmp_path / "1epoch.pth")
    speech, lengths = 0.1 * torch.randn(1, 16000), torch.tensor([16000])
    with torch.no_grad():
        want = model.encode(speech, lengths)[0]
        again = load_state_strict(_wavlm_model(tiny_llm, wavlm_checkpoint).eval(), tmp_path / "1epoch.pth")
        assert torch.equal(again.encode(speech, lengths)[0], want)

    other = tmp_path / "other_wavlm.pt"  # the same architecture, other weights
    saved = torch.load(wavlm_checkpoint, weights_only=False)
    torch.manual_seed(7)
    torch.save({"cfg": saved["cfg"], "model": WavLM(WavLMConfig(saved["cfg"])).state_dict()}, other)
    with pytest.raises(ValueError, match="other SSL frontend weights"):
        load_state_strict(_wavlm_model(tiny_llm, other), tmp_path / "1epoch.pth")


def test_ssl_checkpoint_is_checked_before_the_jobs(tmp_path, wavlm_checkpoint, monkeypatch, capsys):
    """check_llm (run by palign.sh before stages 4-6) names a moved local checkpoint and an s3prl hub upstream
    that would have to download offline, with what to do; a local checkpoint that is there passes. The
    hub upstream's URL comes from s3prl's own hub function, with its download stopped (nothing fetched)."""
    import yaml

    from espnet_ext.bin import check_llm

    def config(name, s3prl):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"frontend": "s3prl", "frontend_conf": {"frontend_conf": s3prl},
                                        "llm_conf": {"name_or_path": str(tmp_path)}}))
        return path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ok = config("ok", {"upstream": "wavlm_local", "path_or_url": str(wavlm_checkpoint)})
    assert check_llm.ssl_problem(ok, yaml.safe_load(ok.read_text())) == ""
    moved = config("moved", {"upstream": "wavlm_local", "path_or_url": str(tmp_path / "gone" / "wavlm.pt")})
    assert check_llm.main([str(moved)]) == 1
    err = capsys.readouterr().err
    assert f"path_or_url '{tmp_path / 'gone' / 'wavlm.pt'}' does not exist" in err and "wavlm_local" in err
    url, cache = check_llm.upstream_checkpoint("wavlm_large")
    assert url.endswith("/wavlm_large.pt") and cache.name.endswith(".wavlm_large.pt")
    if not cache.exists():  # (a machine with WavLM-Large cached would load it: nothing to report)
        hub = config("hub", {"upstream": "wavlm_large"})
        problem = check_llm.ssl_problem(hub, yaml.safe_load(hub.read_text()))
        assert f"would download {url}" in problem and "HF_HUB_OFFLINE is set" in problem
    assert "is not an s3prl upstream" in check_llm.ssl_problem(moved, {"frontend": "s3prl", "frontend_conf": {
        "frontend_conf": {"upstream": "no_such_upstream"}}})
    assert check_llm.upstream_checkpoint("fbank") is None  # computed, nothing to download


def test_moved_ssl_checkpoint_of_a_trained_model_is_named(tmp_path):
    """A model dir whose config.yaml points at an SSL checkpoint that is no longer there: the error names
    the key and the path (s3prl's own is a bare AssertionError)."""
    import yaml

    from espnet_ext.inference import read_model_config

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"frontend": "s3prl", "frontend_conf": {
        "frontend_conf": {"upstream": "wavlm_local", "path_or_url": str(tmp_path / "old" / "wavlm.pt")}}}))
    with pytest.raises(SystemExit, match=r"frontend_conf\.frontend_conf\.path_or_url is '.*old/wavlm.pt', which "
                                         r"does not exist \(moved or deleted\?\)"):
        read_model_config(tmp_path)


def test_linear_preencoder_projects_ssl_features_before_the_encoder(tiny_llm, wavlm_checkpoint):
    """preencoder: linear (ESPnet's SSL recipes put it between a 1024-dim SSL model and a Conformer's conv2d
    input layer): its input width is the frontend's, the encoder reads its output, and it learns."""
    args = tiny_train_args(tiny_llm)
    args[args.index("frontend_conf={upstream: fbank}")] = (
        f"frontend_conf={{upstream: wavlm_local, path_or_url: {wavlm_checkpoint}}}")
    args += ["--preencoder", "linear", "--preencoder_conf", "output_size=16"]
    model = PalignTask.build_model(PalignTask.get_parser().parse_args(args))
    assert model.preencoder.linear_out.in_features == 32 and model.preencoder.output_size() == 16
    assert model.encoder.embed.out[0].in_features == 32 * (((16 - 1) // 2 - 1) // 2)  # conv2d input layer on 16 dims
    tokens, _ = model.encode(0.1 * torch.randn(1, 16000), torch.tensor([16000]))
    tokens.sum().backward()
    assert model.preencoder.linear_out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="preencoder_conf.input_size is 1024, but the frontend gives 32-dim"):
        PalignTask.build_model(PalignTask.get_parser().parse_args(args + ["--preencoder_conf", "input_size=1024"]))
