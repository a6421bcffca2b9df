"""Stage 4: teacher prompts from the prompt YAML, batched generation, resume after a kill, merge."""
import json

import pytest
import yaml

from conftest import ROOT
from espnet_ext import teacher
from espnet_ext.bin import teacher_generate
from espnet_ext.datadir import read_kv
from espnet_ext.palign.prompts import load_prompt_conf, teacher_prompt

PROMPTS = ROOT / "conf" / "prompts" / "emotion.yaml"


def test_teacher_prompt_fills_label_words_and_rejects_unknown_labels():
    conf = load_prompt_conf(PROMPTS)
    assert teacher_prompt(conf, "response", " I lost my keys. ", "sad") == "(The user sounds sad.) I lost my keys."
    assert teacher_prompt(conf, "response", "Hi.", "whisper") == "(The user is whispering.) Hi."
    assert teacher_prompt(conf, "response", "Hi.", "hap") == "(The user sounds happy.) Hi."
    assert teacher_prompt(conf, "response_neutral", "Hi.", "no-such-label") == "Hi."
    with pytest.raises(KeyError, match="utterance 'u1': label 'zzz' has no entry"):
        teacher_prompt(conf, "response", "Hi.", "zzz", where="utterance 'u1': ")


def test_generate_resumes_after_interruption(tiny_llm, small_corpus, tmp_path):
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tiny_llm)}, "prompt_conf": str(PROMPTS),
                                      "batch_size": 4, "max_new_tokens": 5}))
    dirs = [str(small_corpus / s) for s in ("train", "test")]
    common = ["--config", str(config), "--out", str(tmp_path / "t")]
    assert teacher_generate.main(["prepare", *common, "--data_dirs", *dirs]) == 0
    prompts = [json.loads(line) for line in (tmp_path / "t" / "prompts.jsonl").read_text().splitlines()]
    utts = len(read_kv(small_corpus / "train" / "text")) + len(read_kv(small_corpus / "test" / "text"))
    assert len(prompts) < 2 * utts  # voices share prompts: each is generated once
    for shard in (1, 2):
        assert teacher_generate.main(["generate", *common, "--shard", str(shard), "--num_shards", "2"]) == 0
    full = {}
    for shard in (1, 2):
        full.update({r["id"]: r["reply"] for r in teacher.read_jsonl(tmp_path / "t" / f"replies.{shard}.jsonl")})
    assert set(full) == {p["id"] for p in prompts}

    # Kill simulation: shard 1 lost its last replies and was cut in the middle of a line.
    path = tmp_path / "t" / "replies.1.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    assert teacher_generate.main(["generate", *common, "--shard", "1", "--num_shards", "2"]) == 0
    again = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(again) == len({r["id"] for r in again}) == len(lines)  # nothing lost, nothing twice
    assert {r["id"]: r["reply"] for r in again} == {k: v for k, v in full.items() if k in {r["id"] for r in again}}

    assert teacher_generate.main(["merge", *common, "--data_dirs", *dirs]) == 0
    for d in dirs:
        for task in ("response", "response_neutral"):
            assert list(read_kv(f"{d}/{task}")) == list(read_kv(f"{d}/text"))


def test_a_second_teacher_leaves_the_first_ones_targets_and_the_data_alone(tiny_llm, small_corpus, tmp_path):
    """The recipe's stage 4: targets go to <teacher dir>/<set>/ with meta.yaml; the data dir is not written."""
    from espnet_ext.palign.llm import FrozenLLM

    data = small_corpus / "test"
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    outs = []
    for name, tokens in (("teacher_a", 5), ("teacher_b", 2)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tiny_llm)}, "prompt_conf": str(PROMPTS),
                                          "batch_size": 8, "max_new_tokens": tokens}))
        out = tmp_path / name
        common = ["--config", str(config), "--out", str(out), "--data_dirs", str(data), "--targets_dir", str(out)]
        for step in ("prepare", "generate", "merge"):
            assert teacher_generate.main([step, *common] if step != "generate" else [step, *common[:4]]) == 0
        outs.append(out)
        if name == "teacher_a":
            first = (out / "test" / "response").read_bytes()
    assert (outs[0] / "test" / "response").read_bytes() == first  # untouched by teacher_b
    assert (outs[1] / "test" / "response").read_bytes() != first  # 2 tokens, not 5
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()} == before
    meta = yaml.safe_load((outs[0] / "meta.yaml").read_text())
    assert meta["max_new_tokens"] == 5 and meta["llm"] == str(tiny_llm)
    teacher.check_meta(outs[0] / "meta.yaml", FrozenLLM(str(tiny_llm)).fingerprint)  # the same weights: fine
    with pytest.raises(SystemExit, match="written by .* with other weights fingerprint .* than this training uses"):
        teacher.check_meta(outs[0] / "meta.yaml", "0" * 40)


def teacher_stage(config, out, data):
    """Stage 4's three steps, as palign.sh runs them."""
    common = ["--config", str(config), "--out", str(out), "--data_dirs", str(data), "--targets_dir", str(out)]
    for step in ("prepare", "generate", "merge"):
        assert teacher_generate.main([step, *common] if step != "generate" else [step, *common[:4]]) == 0


def test_changed_teacher_settings_are_never_served_from_the_cache(tiny_llm, small_corpus, tmp_path, caplog):
    """The system prompt and max_new_tokens are in the prompt ids (a change is generated, not looked up);
    another chat template or other weights stop stage 4; stage 6 refuses targets of other teacher prompts."""
    import logging
    import shutil

    from espnet_ext.palign.llm import FrozenLLM

    caplog.set_level(logging.INFO)
    prompts = tmp_path / "prompts.yaml"
    shutil.copy(PROMPTS, prompts)
    config = tmp_path / "teacher.yaml"
    settings = {"llm_conf": {"name_or_path": str(tiny_llm)}, "prompt_conf": str(prompts), "batch_size": 8,
                "max_new_tokens": 3}
    config.write_text(yaml.safe_dump(settings))
    data, out = small_corpus / "test", tmp_path / "teacher"
    teacher_stage(config, out, data)
    n = len(teacher.read_jsonl(out / "prompts.jsonl"))

    def answered():
        return sum(len(teacher.read_jsonl(p)) for p in out.glob("replies.*.jsonl"))

    conf = load_prompt_conf(prompts)
    conf["system"] = "You answer in one word."
    prompts.write_text(yaml.safe_dump(conf))
    teacher_stage(config, out, data)  # a new system prompt: every prompt is generated again
    assert answered() == 2 * n
    assert yaml.safe_load((out / "meta.yaml").read_text())["system"] == "You answer in one word."
    config.write_text(yaml.safe_dump({**settings, "max_new_tokens": 4}))
    teacher_stage(config, out, data)
    assert answered() == 3 * n
    replies = {r["id"]: r["reply"] for p in out.glob("replies.*.jsonl") for r in teacher.read_jsonl(p)}
    latest = {p["id"] for p in teacher.read_jsonl(out / "prompts.jsonl")}
    assert set(read_kv(out / "test" / "response").values()) <= {replies[i] or "..." for i in latest}

    llm = FrozenLLM(str(tiny_llm), system=conf["system"])
    teacher.check_meta(out / "meta.yaml", llm.fingerprint, llm.chat.tokenizer.chat_template, conf)
    with pytest.raises(SystemExit, match="other teacher prompts .* the system prompt was 'You answer in one word.', "
                                         "now 'Be brief.'; rerun stage 4"):
        teacher.check_meta(out / "meta.yaml", llm.fingerprint, llm.chat.tokenizer.chat_template,
                           {**conf, "system": "Be brief."})
    with pytest.raises(SystemExit, match="other chat template"):
        teacher.check_meta(out / "meta.yaml", llm.fingerprint, "{{ messages }}", conf)

    other = tmp_path / "other_llm"  # the same weights with another chat template
    shutil.copytree(tiny_llm, other)
    template = other / "chat_template.jinja"
    template.write_text(template.read_text().replace("<|im_start|>", "<|im_start|> "))
    config.write_text(yaml.safe_dump({**settings, "max_new_tokens": 4, "llm_conf": {"name_or_path": str(other)}}))
    with pytest.raises(SystemExit, match=r"another chat template .* rm .*replies\.\*\.jsonl"):
        teacher_stage(config, out, data)  # even though every prompt is answered already


def test_merge_names_utterance_without_reply(small_corpus, tmp_path):
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": "unused"}, "prompt_conf": str(PROMPTS)}))
    common = ["--config", str(config), "--out", str(tmp_path / "t"), "--data_dirs", str(small_corpus / "valid")]
    teacher_generate.main(["prepare", *common])
    with pytest.raises(SystemExit, match="no reply for utterance 'spk003_"):
        teacher_generate.main(["merge", *common])


def test_text_system_reuses_the_teachers_replies(tiny_llm, small_corpus, tmp_path):
    """The topline's prompts are the teacher's: stage 9 takes stage 4's replies and loads no LLM weights
    (the LLM folder here has only the tokenizer, so any generation would fail)."""
    import shutil

    from espnet_ext.bin import text_system
    tokenizer_only = tmp_path / "tokenizer_only"
    shutil.copytree(tiny_llm, tokenizer_only, ignore=shutil.ignore_patterns("*.safetensors"))
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tokenizer_only)}, "prompt_conf": str(PROMPTS)}))
    test = small_corpus / "test"
    stage4 = tmp_path / "teacher"
    conf = load_prompt_conf(PROMPTS)
    teacher.prepare([test], ["response", "emotion"], conf, stage4, teacher.generation_key(conf.get("system"), 64))
    with open(stage4 / "replies.1.jsonl", "w") as f:
        for p in teacher.read_jsonl(stage4 / "prompts.jsonl"):
            f.write(json.dumps({"id": p["id"], "reply": f"reply to {p['task']}: {p['user'][:20]}"}) + "\n")
    out = tmp_path / "topline"
    assert text_system.main(["--ref_dir", str(test), "--out_dir", str(out), "--config", str(config),
                             "--cache", str(tmp_path / "cache"), "--known_replies", str(stage4),
                             "--with_emotion", "true"]) == 0
    replies = read_kv(out / "text")
    assert list(replies) == list(read_kv(test / "text")) and all(r.startswith("reply to response") for r in replies.values())
    assert not list((tmp_path / "cache").glob("replies.*.jsonl")) or not (tmp_path / "cache" / "replies.1.jsonl").read_text()
    with pytest.raises(Exception):  # without the teacher's replies it has to generate, and there is no LLM
        text_system.main(["--ref_dir", str(test), "--out_dir", str(tmp_path / "o2"), "--config", str(config),
                          "--cache", str(tmp_path / "cache2"), "--with_emotion", "true"])


def test_reworded_reference_writes_the_emotion_in_other_words(tmp_path):
    """The reworded reference (stage 9): the teacher's prompts with each label's clause in the given words;
    a wording without {emotion}, or without the emotion written at all, is refused."""
    from espnet_ext.bin import text_system
    conf = text_system.reworded(load_prompt_conf(PROMPTS), "The user feels {emotion}")
    assert teacher_prompt(conf, "response", "I lost my keys.", "sad") == "(The user feels sad.) I lost my keys."
    assert teacher_prompt(conf, "response", "Hi.", "whisper") == "(The user feels whispering.) Hi."
    assert teacher_prompt(conf, "response", "Hi.", "hap") == "(The user feels happy.) Hi."
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tmp_path / "no-llm")}, "prompt_conf": str(PROMPTS)}))
    for with_emotion, words in (("true", "The user feels"), ("false", "The user feels {emotion}")):
        with pytest.raises(SystemExit, match="--description needs --with_emotion true and an {emotion}"):
            text_system.main(["--ref_dir", str(tmp_path), "--out_dir", str(tmp_path / "o"), "--config", str(config),
                              "--cache", str(tmp_path / "c"), "--with_emotion", with_emotion, "--description", words])


def test_system_prompt_diagnostic_prints_each_candidate(tiny_llm, small_corpus, tmp_path, capsys):
    """bench/teacher_prompts.py (how the recipe's system prompt was chosen) runs end to end with a tiny LLM."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("teacher_prompts", ROOT / "bench" / "teacher_prompts.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    systems = tmp_path / "systems.txt"
    systems.write_text("You are brief.\n\nSay how the user feels first.\n")
    assert bench.main(["--data_dir", str(small_corpus / "valid"), "--llm", str(tiny_llm),
                       "--systems", str(systems), "--max_new_tokens", "4"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if " pairs)  '" in line]
    assert [r.split("  ")[-1] for r in rows] == ["'You are brief.'", "'Say how the user feels first.'"]
    for r in rows:  # teacher WA | pairs (central) | pairs (random) | own words | clause | words per reply
        wa, central, rnd, own, clause, words = (float(x.split("±")[0]) for x in r.split("(")[0].split("|"))
        assert all(0 <= x <= 1 for x in (wa, central, rnd, own, clause)) and 0 <= words <= 4 * 3  # from 4 new tokens


def test_plain_token_id_prompts_give_the_replies_of_the_prefix_cached_path(tiny_llm):
    """What the vLLM backend feeds its engine (each user turn rendered to token ids, no cache tricks) gives,
    decoded greedily by a plain engine, the replies of the default backend; and its fingerprint is FrozenLLM's."""
    import torch

    from espnet_ext.text_generation import make_generator, prompt_token_ids, weights_fingerprint

    gen = make_generator({"name_or_path": str(tiny_llm)}, "You are a kind assistant.", "cpu", backend="hf")
    users = ["I lost my keys.", "The weather is nice today, is it not?", "Hello"]
    replies = gen.generate(users, max_new_tokens=8)
    plain = []
    for ids in prompt_token_ids(gen.chat, users):  # one at a time: no padding, no prefix cache
        out = gen.llm.model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, num_beams=1,
                                     eos_token_id=gen.chat.stop_ids, pad_token_id=gen.chat.pad_id,
                                     top_p=None, top_k=None, temperature=None)
        plain += gen.chat.decode([out[0, len(ids):].tolist()])
    assert replies == plain and any(replies)
    assert weights_fingerprint(str(tiny_llm)) == gen.fingerprint


def test_lm_head_gets_contiguous_rows_and_the_same_logits(tiny_llm):
    """Generation's prefill hands the head a non-contiguous (B, 1, H) slice; FrozenLLM's pre-hook makes it
    contiguous (one matrix product instead of a per-row copy of the head's weight), logits unchanged."""
    import torch

    from espnet_ext.palign.llm import FrozenLLM

    llm = FrozenLLM(str(tiny_llm), dtype="bfloat16")
    head = llm.model.get_output_embeddings()
    seen = []
    head.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    hidden = torch.randn(3, 7, llm.hidden_size, dtype=llm.dtype)
    last = hidden[:, -1:]
    assert not last.is_contiguous()
    with torch.no_grad():
        got = head(last)
    assert seen == [True]
    assert torch.equal(got, torch.nn.functional.linear(last.contiguous(), head.weight))
    seen.clear()
    llm.generate_from_text(["Hello", "I lost my keys."], max_new_tokens=2)
    assert seen and all(seen)


def test_vllm_backend_without_vllm_says_how_to_install_it(tiny_llm):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here: the error path cannot be reached")
    from espnet_ext.text_generation import make_generator

    with pytest.raises(SystemExit, match="install.sh --vllm"):
        make_generator({"name_or_path": str(tiny_llm)}, None, "cpu", backend="vllm")
    with pytest.raises(SystemExit, match="unknown generation backend 'tgi'"):
        make_generator({"name_or_path": str(tiny_llm)}, None, "cpu", backend="tgi")
