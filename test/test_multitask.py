"""Multitask alignment: the task sampler's ratios, the KL loss, target masking, task targets in stage 4."""
import json

import pytest
import torch
import yaml

from conftest import ROOT, tiny_train_args
from espnet_ext.bin import measure_prosody, teacher_generate
from espnet_ext.datadir import read_kv
from espnet_ext.palign.losses import CrossEntropy, KLDistillation
from espnet_ext.palign.sampler import TaskSampler
from espnet_ext.tasks.palign import PalignTask

PROMPTS = ROOT / "conf" / "prompts" / "emotion.yaml"


def test_sampler_respects_ratios_and_availability():
    sampler = TaskSampler(["response", "emotion", "style", "asr"],
                          {"response": 0.4, "emotion": 0.3, "style": 0.2, "asr": 0.1}, seed=0)
    draws = sampler.sample(40000)
    for task, ratio in {"response": 0.4, "emotion": 0.3, "style": 0.2, "asr": 0.1}.items():
        assert draws.count(task) / len(draws) == pytest.approx(ratio, abs=0.01)
    only = sampler.sample(20000, available=["emotion", "asr"])  # renormalised: 0.75 / 0.25
    assert set(only) == {"emotion", "asr"} and only.count("emotion") / len(only) == pytest.approx(0.75, abs=0.015)
    assert TaskSampler(["a", "b"], seed=3).sample(50) == TaskSampler(["a", "b"], seed=3).sample(50)
    with pytest.raises(ValueError, match="unknown task"):
        TaskSampler(["a"], {"b": 1.0})
    with pytest.raises(ValueError, match="at least one > 0"):
        TaskSampler(["a"], {"a": 0.0})


def test_every_ablation_variant_of_synth_emo_gives_a_task_mix_the_sampler_takes():
    """conf/ablations.yaml's changes are merged into the main config (nested dicts merged): a variant that
    drops a task must not leave that task's ratio behind, or its training stops at stage 5."""
    from espnet_ext.bin.make_results import variant_config

    conf_dir = ROOT / "egs" / "synth_emo" / "palign1" / "conf"
    base = yaml.safe_load((conf_dir / "train_smollm2.yaml").read_text())
    for name, changes in yaml.safe_load((conf_dir / "ablations.yaml").read_text()).items():
        conf, _ = variant_config(base, changes)
        task_conf = conf.get("task_conf") or {}
        sampler = TaskSampler(conf["tasks"], task_conf.get("ratios"), task_conf.get("weights"))
        assert sum(sampler.ratios.values()) > 0, name
    no_asr, _ = variant_config(base, yaml.safe_load((conf_dir / "ablations.yaml").read_text())["no_asr_task"])
    assert TaskSampler(no_asr["tasks"], no_asr["task_conf"]["ratios"]).sample(2000).count("asr") == 0


def test_kl_is_zero_for_equal_logits_and_pulls_towards_the_teacher():
    logits = torch.randn(5, 11)
    target = torch.randint(0, 11, (5,))
    kl = KLDistillation(temperature=2.0)
    assert kl(logits, target, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(1, 3, requires_grad=True)          # uniform
    teacher = torch.tensor([[4.0, 0.0, 0.0]])                 # prefers token 0
    kl(student, torch.tensor([0]), teacher).backward()
    assert student.grad[0, 0] < 0 < student.grad[0, 1]        # descent raises token 0, lowers the others
    mixed = KLDistillation(ce_weight=0.5)(logits, target, logits.clone())
    assert mixed.item() == pytest.approx(0.5 * CrossEntropy()(logits, target).item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs the teacher"):
        kl(logits, target, None)


def _batch(model, b=4):
    chat = model.llm.chat
    replies = {"response": ["That is wonderful news!", "Oh no, I am sorry.", "Fine.", "Calm down, please."],
               "emotion": ["Happy.", "Sad.", "Neutral.", "Angry."]}
    batch = {"speech": torch.randn(b, 16000) * 0.1, "speech_lengths": torch.tensor([16000, 12000, 14000, 9000])}
    for task, texts in replies.items():
        ids = [chat.reply_ids(t) for t in texts]
        pad = torch.full((b, max(map(len, ids)) + 3), -32768)
        for i, x in enumerate(ids):
            pad[i, : len(x)] = torch.tensor(x)
        batch[task], batch[f"{task}_lengths"] = pad, torch.tensor([len(x) for x in ids])
        users = [f"(The user sounds x.) {t}" for t in texts]
        prompts = [chat.encode(chat.render(u)) for u in users]
        pp = torch.full((b, max(map(len, prompts))), -32768)
        for i, x in enumerate(prompts):
            pp[i, : len(x)] = torch.tensor(x)
        batch[f"{task}_prompt"], batch[f"{task}_prompt_lengths"] = pp, torch.tensor([len(x) for x in prompts])
    return batch


@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_only_reply_tokens_count(tiny_llm, loss):
    args = PalignTask.get_parser().parse_args(
        tiny_train_args(tiny_llm, loss=loss) + ["--tasks", "response", "emotion", "--task_conf",
                                                 "ratios={response: 0.5, emotion: 0.5}"])
    model = PalignTask.build_model(args)
    model.eval()  # no dropout: two passes must agree
    batch = _batch(model)
    torch.manual_seed(0)  # the task sampler draws from the global generator
    loss1, stats, _ = model(**batch)
    assert {k for k in stats if k.startswith("loss_")} <= {"loss_response", "loss_emotion", "loss_align"}
    # Garbage beyond each row's length (padding) and a different teacher text for padding rows change nothing.
    for task in ("response", "emotion"):
        for i, n in enumerate(batch[f"{task}_lengths"].tolist()):
            batch[task][i, n:] = 5
    torch.manual_seed(0)
    loss2, _, _ = model(**batch)
    assert torch.allclose(loss1, loss2)
    loss2.backward()
    assert model.adapter.mlp[0].weight.grad is not None and model.adapter.mlp[0].weight.grad.abs().sum() > 0
    # The scored positions are exactly the reply tokens of each row's task.
    emb, lengths = model.encode(batch["speech"], batch["speech_lengths"])
    _, _, index, _ = model.splice("emotion", emb, lengths, batch["emotion"], batch["emotion_lengths"])
    assert len(index) == int(batch["emotion_lengths"].sum())


def test_stage4_targets_for_every_task(tiny_llm, small_corpus, tmp_path):
    import shutil

    d = tmp_path / "valid"
    shutil.copytree(small_corpus / "valid", d)
    assert measure_prosody.main(["--data_dir", str(d)]) == 0
    pitch = read_kv(d / "utt2pitch")
    assert set(pitch) == set(read_kv(d / "text")) and set(pitch.values()) <= {"low", "medium", "high"}
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tiny_llm)}, "prompt_conf": str(PROMPTS),
                                      "batch_size": 8, "max_new_tokens": 4}))
    common = ["--config", str(config), "--out", str(tmp_path / "t"), "--data_dirs", str(d),
              "--tasks", "response", "emotion", "style", "asr"]
    teacher_generate.main(["prepare", *common])
    tasks = {json.loads(line)["task"] for line in (tmp_path / "t" / "prompts.jsonl").read_text().splitlines()}
    assert tasks == {"response", "emotion", "style"}  # asr is the transcript: nothing to generate
    teacher_generate.main(["generate", "--config", str(config), "--out", str(tmp_path / "t")])
    teacher_generate.main(["merge", *common])
    assert read_kv(d / "asr") == read_kv(d / "text")
    utt = next(iter(read_kv(d / "text")))
    style_prompt = read_kv(d / "style_prompt")[utt]
    assert f"{pitch[utt]} pitch" in style_prompt and "\\n" in style_prompt and "\n" not in style_prompt
    for task in ("response", "emotion", "style"):
        assert list(read_kv(d / task)) == list(read_kv(d / "text"))


def test_preprocessor_renders_teacher_prompts_for_kl(tiny_llm):
    args = PalignTask.get_parser().parse_args(tiny_train_args(tiny_llm, loss="kl") + ["--tasks", "response", "style"])
    pre = PalignTask.build_preprocess_fn(args, train=True)
    out = pre("u1", {"style_prompt": "I said: hi\\nDescribe how I sound.", "style": "You sound calm."})
    assert out["style_prompt"].tolist() == pre.chat.encode(pre.chat.render("I said: hi\nDescribe how I sound."))
    assert out["style"][-1] == pre.chat.end_of_turn
