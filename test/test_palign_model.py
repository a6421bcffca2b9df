"""The ParaAlign model through ESPnet's own trainer: the LLM stays frozen and out of checkpoints,
the speech is spliced at the right place, checkpoints refuse a different LLM, decoding works."""
import hashlib

import numpy as np
import pytest
import soundfile
import torch

from conftest import tiny_train_args, tiny_training_cmd
from espnet_ext.datadir import read_kv
from espnet_ext.tasks.palign import PalignTask


def _param_hashes(module):
    return {n: hashlib.sha1(p.detach().cpu().numpy().tobytes()).hexdigest() for n, p in module.named_parameters()}


class ObservedTask(PalignTask):
    """PalignTask that keeps a handle on the model it builds, so the test can look at the LLM afterwards."""
    built = []

    @classmethod
    def build_model(cls, args):
        model = super().build_model(args)
        cls.built.append((model, _param_hashes(model.llm.model)))
        return model


@pytest.fixture(scope="module")
def trained(tiny_llm, small_corpus, tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp") / "palign"
    ObservedTask.built.clear()
    ObservedTask.main(cmd=tiny_training_cmd(tiny_llm, small_corpus, exp, max_epoch=2))
    model, hashes_before = ObservedTask.built[-1]
    return exp, model, hashes_before


def test_llm_is_untouched_by_training(trained):
    _, model, before = trained
    assert _param_hashes(model.llm.model) == before
    assert all(not p.requires_grad for p in model.llm.model.parameters())
    assert not model.llm.model.training  # the Trainer's model.train() does not reach the LLM
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("llm") for n in trainable)


def test_checkpoints_hold_trainable_parts_only(trained):
    exp, model, _ = trained
    llm_tensors = [p.detach() for p in model.llm.model.parameters()]
    expected = sum(t.numel() for t in model.state_dict().values())
    files = sorted(exp.glob("*.pth"))
    assert {"1epoch.pth", "2epoch.pth", "valid.loss.ave.pth", "checkpoint.pth"} <= {f.name for f in files}
    for f in files:
        state = torch.load(f, map_location="cpu", weights_only=False)
        if f.name == "checkpoint.pth":
            n_opt_states = len(state["optimizers"][0]["state"])
            assert n_opt_states == sum(1 for p in model.parameters() if p.requires_grad)
            state = state["model"]
        assert not any(k.startswith("llm.") for k in state), f.name
        assert not any(v.shape == t.shape and torch.equal(v, t) for v in state.values() for t in llm_tensors), f.name
        assert sum(v.numel() for v in state.values()) == expected, f.name
        if f.name != "checkpoint.pth":
            assert f.stat().st_size < 4 * expected + 200_000, f.name  # fp32 trainable parts + pickle overhead


def test_checkpoint_refuses_another_llm(trained, tmp_path):
    from espnet_ext.bin.prepare_llm import build_tiny

    exp, _, _ = trained
    other = tmp_path / "other"
    build_tiny(other, ["some other text to train on", "and more text"], seed=1)
    config = exp / "config.yaml"
    text = config.read_text().replace(str(read_llm_path(config)), str(other))
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ValueError, match="aligned to another LLM"):
        PalignTask.build_model_from_file(tmp_path / "config.yaml", exp / "valid.loss.ave.pth")


def read_llm_path(config):
    import yaml

    return yaml.safe_load(config.read_text())["llm_conf"]["name_or_path"]


def test_reloaded_model_generates_same_batched_and_alone(trained, small_corpus):
    exp, _, _ = trained
    model, args = PalignTask.build_model_from_file(exp / "config.yaml", exp / "valid.loss.ave.pth")
    model.eval()
    assert args.prompt_conf["student"]["response"] == "<speech>"  # prompt YAML inlined in config.yaml
    wavs = [soundfile.read(p, dtype="float32")[0] for p in list(read_kv(small_corpus / "test" / "wav.scp").values())[:3]]
    lengths = torch.tensor([len(w) for w in wavs])
    speech = torch.zeros(3, int(lengths.max()))
    for i, w in enumerate(wavs):
        speech[i, : len(w)] = torch.from_numpy(w)
    batched = model.generate(speech, lengths, max_new_tokens=6)
    alone = [model.generate(speech[i:i + 1, : lengths[i]], lengths[i:i + 1], max_new_tokens=6)[0] for i in range(3)]
    assert batched == alone
    # Several questions and a text-only turn decoded as one batch give what each gives on its own.
    user = "<speech>\nWhat emotion do you hear?"
    texts = ["I lost my keys.", "Hello there"]
    together = model.answer(speech, lengths, {"reply": ("response", None), "emotion": ("response", user)},
                            max_new_tokens=6, text_users={"text": texts})
    assert together["reply"] == batched
    assert together["emotion"] == model.generate(speech, lengths, user=user, max_new_tokens=6)
    assert together["text"] == [model.llm.generate_from_text([t], 6)[0] for t in texts]
    pooled = model.pooled_speech_tokens(speech, lengths)
    assert pooled.shape == (3, model.llm.hidden_size)


@pytest.mark.parametrize("cache_prefix", [True, False])
def test_splice_puts_reply_predictions_at_the_right_positions(tiny_llm, cache_prefix):
    """With token embeddings in place of speech, the spliced forward must equal the LLM's own forward over
    the whole uncached sequence (fp32), whether the prompt prefix comes from the KV cache or not."""
    model = PalignTask.build_model(PalignTask.get_parser().parse_args(
        tiny_train_args(tiny_llm, cache_prefix=str(cache_prefix).lower())))
    model.eval()
    chat = model.llm.chat
    texts, replies = ["my manager called", "the results came back this morning"], ["sorry", "that is great news"]
    emb = [model.llm.embed(torch.tensor(chat.encode(t))) for t in texts]
    lengths = torch.tensor([e.shape[0] for e in emb])
    speech = torch.zeros(2, int(lengths.max()), emb[0].shape[1])
    for i, e in enumerate(emb):
        speech[i, : len(e)] = e
    reply_ids = [chat.reply_ids(r) for r in replies]
    reply = torch.full((2, max(map(len, reply_ids))), -32768)
    for i, r in enumerate(reply_ids):
        reply[i, : len(r)] = torch.tensor(r)
    inputs, mask, index, prefix = model.splice("response", speech, lengths, reply,
                                               torch.tensor(list(map(len, reply_ids))))
    assert (prefix is not None) == cache_prefix
    got = model.reply_logits(inputs, mask, index, prefix)
    prompt = chat.speech_prompt("<speech>")
    want = []
    for t, r in zip(texts, reply_ids):
        ids = prompt.prefix + chat.encode(t) + prompt.suffix + r
        logits = model.llm.model(input_ids=torch.tensor([ids])).logits[0]
        start = len(ids) - len(r)
        want.append(logits[start - 1: len(ids) - 1])
    assert torch.allclose(got, torch.cat(want), atol=1e-4)


def test_gradient_checkpointing_is_active_on_the_frozen_llm_and_changes_nothing(tiny_llm):
    """The real configs' ``gradient_checkpointing: true``: the frozen LLM (eval mode) must really recompute
    its layers in backward, and give the logits and input gradients of the plain model, prefix cache or not."""
    speech = 0.1 * torch.randn(2, 16000)
    lengths = torch.tensor([16000, 12000])
    reply = torch.tensor([[5, 6, 7], [8, 9, -32768]])
    results = {}
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = PalignTask.build_model(PalignTask.get_parser().parse_args(
            tiny_train_args(tiny_llm, llm_conf=f"gradient_checkpointing={str(ckpt).lower()}")))
        model.train()
        model.llm.prefix_kv(model.prefix_response.tolist())  # the prefix cache is filled once, before counting
        calls = []
        mlp = model.llm.model.base_model.layers[0].mlp  # inside the checkpointed forward: replayed in backward
        handle = mlp.register_forward_pre_hook(lambda *a: calls.append(1))
        emb, emb_lengths = model.encode(speech, lengths)
        emb = emb.detach().requires_grad_(True)
        inputs, mask, index, prefix = model.splice("response", emb, emb_lengths, reply, torch.tensor([3, 2]))
        assert prefix is not None  # the recipe's prompts share one prefix
        logits = model.reply_logits(inputs, mask, index, prefix)
        logits.logsumexp(-1).sum().backward()
        handle.remove()
        results[ckpt] = (logits.detach(), emb.grad, len(calls))
    assert torch.allclose(results[True][0], results[False][0], atol=1e-5)
    assert torch.allclose(results[True][1], results[False][1], atol=1e-5)
    assert results[False][2] == 1 and results[True][2] == 2  # the layer ran again in backward


def test_inference_cli_any_rate_and_prompt(trained, small_corpus, tmp_path, capsys):
    from espnet_ext.bin import palign_inference

    exp, _, _ = trained
    x, sr = soundfile.read(next(iter(read_kv(small_corpus / "test" / "wav.scp").values())), dtype="float32")
    t_new = np.arange(int(len(x) * 44100 / sr)) / 44100
    stereo = np.interp(t_new, np.arange(len(x)) / sr, x)
    soundfile.write(tmp_path / "stereo44k.wav", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    assert palign_inference.main(["--model_dir", str(exp), "--wav", str(tmp_path / "stereo44k.wav"),
                                  "--max_new_tokens", "5", "--device", "cpu"]) == 0
    assert palign_inference.main(["--model_dir", str(exp), "--wav", str(tmp_path / "stereo44k.wav"),
                                  "--prompt", "What emotion do you hear?", "--max_new_tokens", "5",
                                  "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    with pytest.raises(SystemExit) as e:  # checked before the model loads (argparse's usage error)
        palign_inference.main(["--model_dir", str(exp), "--wav", str(tmp_path / "missing.wav"), "--device", "cpu"])
    assert e.value.code == 2 and "missing.wav: no such file" in capsys.readouterr().err


def test_decode_dir_resumes_without_duplicates(trained, small_corpus, tmp_path):
    from espnet_ext.bin import palign_inference

    exp, _, _ = trained
    out = tmp_path / "text"
    keys = list(read_kv(small_corpus / "test" / "wav.scp"))
    out.write_text(f"{keys[1]} an earlier reply\n")  # as if a previous run stopped after one utterance
    args = ["--model_dir", str(exp), "--data_dir", str(small_corpus / "test"), "--output", str(out),
            "--batch_size", "3", "--max_new_tokens", "4", "--device", "cpu"]
    assert palign_inference.main(args) == 0
    decoded = read_kv(out)
    assert list(decoded) == sorted(keys) and decoded[keys[1]] == "an earlier reply"
    # Both questions from one encoding: a second output that lacks an utterance has it asked again in both,
    # and neither file ends up with a duplicate.
    emotion = tmp_path / "emotion"
    emotion.write_text(f"{keys[0]} happy\n")
    assert palign_inference.main(args + ["--emotion_output", str(emotion)]) == 0
    answers = read_kv(emotion)
    assert list(answers) == sorted(keys) and answers[keys[0]] == "happy"
    assert list(read_kv(out)) == sorted(keys) and len(out.read_text().splitlines()) == len(keys)
    assert read_kv(out)[keys[1]] != "an earlier reply"  # its emotion answer was missing: asked again


def test_preprocessor_names_utterance_with_empty_reply(tiny_llm):
    args = PalignTask.get_parser().parse_args(tiny_train_args(tiny_llm))
    pre = PalignTask.build_preprocess_fn(args, train=True)
    out = pre("spk1_x", {"speech": np.zeros((1600, 2), dtype=np.float64), "response": "Thanks."})
    assert out["speech"].shape == (1600,) and out["speech"].dtype == np.float32
    assert out["response"][-1] == pre.chat.end_of_turn
    with pytest.raises(ValueError, match="utterance 'spk1_y': empty 'response'"):
        pre("spk1_y", {"response": "  "})


class _RunsCode:
    """A pickle payload: unpickling it calls os.system (writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_inference_loads_tensors_only_and_strictly(trained, small_corpus, tmp_path):
    """A received model file must not run code on load, and a file that does not fit the model (the
    Trainer's checkpoint.pth, an empty dict) is an error naming the problem, not an untrained encoder."""
    import shutil

    from espnet_ext.bin import palign_inference

    exp, _, _ = trained
    work = tmp_path / "exp"
    shutil.copytree(exp, work, symlinks=True)
    wav = list(read_kv(small_corpus / "test" / "wav.scp").values())[0]

    def decode(model_file):
        return palign_inference.main(["--model_dir", str(work), "--model_file", str(model_file), "--wav", wav,
                                      "--max_new_tokens", "3", "--device", "cpu"])

    marker = tmp_path / "pwned"
    evil = dict(torch.load(exp / "valid.loss.ave.pth", weights_only=True))
    evil["payload"] = _RunsCode(marker)
    torch.save(evil, work / "evil.pth")
    with pytest.raises(SystemExit, match="refusing to unpickle"):
        decode(work / "evil.pth")
    assert not marker.exists()

    with pytest.raises(SystemExit, match="checkpoint.pth"):
        decode(work / "checkpoint.pth")  # a dict of model, optimizer and scheduler states
    torch.save({}, work / "empty.pth")
    with pytest.raises(SystemExit, match=r"does not fit .* missing adapter\..*\(\d+ in all\)"):
        decode(work / "empty.pth")
    state = dict(torch.load(exp / "valid.loss.ave.pth", weights_only=True))
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, work / "extra.pth")
    with pytest.raises(SystemExit, match="unexpected extra.weight"):
        decode(work / "extra.pth")
    assert decode(exp / "valid.loss.ave.pth") == 0  # the model training wrote loads


def test_decoding_reads_audio_as_training_does(trained, small_corpus, tmp_path):
    """A stereo 44.1 kHz wav through training's loader (ESPnet's sound reader, the task's preprocessor, the
    collate function) and through decoding's SpeechReader: the same tensor. Decoding then refuses the rate
    the model was not trained at, naming the utterance."""
    from espnet_ext.inference import SpeechReader, load_model

    exp, _, _ = trained
    _, train_args = load_model(exp, None, "cpu")
    x, sr = soundfile.read(next(iter(read_kv(small_corpus / "test" / "wav.scp").values())), dtype="float32")
    t_new = np.arange(int(len(x) * 44100 / sr)) / 44100
    stereo = np.interp(t_new, np.arange(len(x)) / sr, x)
    d = tmp_path / "d"
    d.mkdir()
    soundfile.write(d / "s.wav", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
    (d / "wav.scp").write_text(f"u1 {d / 's.wav'}\n")
    loader = PalignTask.build_streaming_iterator(
        [(str(d / "wav.scp"), "speech", "sound")], preprocess_fn=PalignTask.build_preprocess_fn(train_args, True),
        collate_fn=PalignTask.build_collate_fn(train_args, True), num_workers=0, dtype="float32")
    (keys, batch), = list(loader)
    decoded = SpeechReader(d, train_args, fs=None)("u1")
    assert keys == ["u1"] and decoded.ndim == 1 and len(decoded) == len(stereo)
    assert torch.equal(batch["speech"][0], torch.from_numpy(decoded))
    with pytest.raises(SystemExit, match="utterance 'u1' is at 44100 Hz, the model takes 16000 Hz"):
        SpeechReader(d, train_args)("u1")
