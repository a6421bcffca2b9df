"""The synth_emo recipe end to end through run.sh, in a recipe dir made by the template's setup.sh:
stages 1-2 (data), then 3-12 with the tiny LLM (teacher, stats, training, decoding, scoring, baselines,
RESULTS.md)."""
import json
import shutil

import yaml

from conftest import ROOT, TEMPLATE, run
from espnet_ext import datadir


def synth_emo_recipe(tmp_path):
    """A new recipe dir made by the template's setup.sh, with synth_emo's run.sh, local/ and conf/."""
    recipe = tmp_path / "egs" / "synth_emo" / "palign1"
    run([str(TEMPLATE / "setup.sh"), str(recipe)])
    src = ROOT / "egs" / "synth_emo" / "palign1"
    shutil.copy(src / "run.sh", recipe / "run.sh")
    shutil.copytree(src / "local", recipe / "local", dirs_exist_ok=True)
    shutil.copytree(src / "conf", recipe / "conf", dirs_exist_ok=True)
    return recipe


def test_synth_emo_recipe_end_to_end(tmp_path):
    recipe = synth_emo_recipe(tmp_path)
    small = ("--train_voices 2 --sentences_per_train_voice 4 --valid_voices 1 --sentences_per_valid_voice 2 "
             "--num_test_sentences 3 --num_test_unseen_sentences 2 --words_utterances 4")
    proc = run(["./run.sh", "--stop_stage", "2", "--local_data_opts", small], cwd=recipe)
    log = proc.stdout + proc.stderr
    for split, n in (("train", 2 * 4 * 4), ("valid", 4 * 2), ("test", 2 * 4 * 3), ("test_unseen", 2 * 4 * 2)):
        assert datadir.validate(recipe / "data" / split)["utterances"] == n
        counts = datadir.validate(recipe / "dump" / "raw" / split)
        assert counts["utterances"] == n and counts["emotions"] == 4
        assert f"dump/raw/{split}: OK, {n} utterances" in log
    assert (recipe / "dump" / "raw" / "test" / "utt2dur").exists()
    # the main config's word sequences for the CTC pre-training, as many as the user's --local_data_opts say
    assert datadir.validate(recipe / "data" / "train_words")["utterances"] == 4
    assert "Stage 2: format audio" in log and "Finished stages 1-2" in log
    dump = recipe / "dump" / "raw"
    after_stage2 = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in dump.rglob("*") if p.is_file()}
    bad = run(["./run.sh", "--stage", "1", "--no_such_option", "1"], cwd=recipe, check=False)
    assert bad.returncode != 0 and "invalid option '--no_such_option'" in bad.stderr

    proc = run(["./run.sh", "--llm", "tiny", "--stage", "3"], cwd=recipe)
    log = proc.stdout + proc.stderr
    for stage in range(3, 13):
        assert f"Stage {stage}:" in log
    # Stage 10 trains the semantic-only model itself (no recursive palign.sh): its time is booked under 10.
    assert "Stage 10: training -> exp/palign_train_tiny_response_neutral" in log
    assert log.count("palign.sh --train_set") == 1
    history = (recipe / "exp" / "run_history.sh").read_text().splitlines()  # every command, with its commit
    commands = [line for line in history if not line.startswith("# ")]
    assert len(commands) == len(history) / 2 and any(
        "conf/train_tiny.yaml" in c and c.rstrip().endswith("--stage 3") for c in commands), history
    exp = recipe / "exp" / "palign_train_tiny"
    assert (exp / "valid.loss.ave.pth").exists() and "2epoch results" in (exp / "train.log").read_text()
    for split in ("test", "test_unseen"):
        replies = datadir.read_kv(exp / "decode" / split / "text")
        assert list(replies) == list(datadir.read_kv(recipe / "dump" / "raw" / split / "utt2spk"))
        teacher = datadir.read_kv(recipe / "exp" / "teacher_tiny" / split / "response")
        assert list(teacher) == list(replies)
    # dump/raw is as stage 2 wrote it: the teacher's targets live in its own dir, with what wrote them
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in dump.rglob("*") if p.is_file()} == after_stage2
    meta = yaml.safe_load((recipe / "exp" / "teacher_tiny" / "meta.yaml").read_text())
    assert len(meta["llm_fingerprint"]) == 40 and meta["prompt_conf"].endswith("emotion.yaml")
    # The semantic-only baseline trains the same tasks on their _neutral targets: no target names the emotion.
    semantic = recipe / "exp" / "palign_train_tiny_response_neutral"
    data_files = {}
    for name, d in (("main", exp), ("semantic", semantic)):
        config = yaml.safe_load((d / "config.yaml").read_text())
        data_files[name] = {field: path for path, field, _ in config["train_data_path_and_name_and_type"]}
        assert data_files[name]["spk_mean"] == "exp/spk_stats/train_tiny/train/spk_mean.scp"  # speaker_norm
    assert [data_files["main"][t] for t in ("response", "emotion")] == ["exp/teacher_tiny/train/response",
                                                                        "exp/teacher_tiny/train/emotion"]
    assert [data_files["semantic"][t] for t in ("response", "emotion")] == [
        "exp/teacher_tiny/train/response_neutral", "exp/teacher_tiny/train/emotion_neutral"]
    assert yaml.safe_load((exp / "config.yaml").read_text())["teacher_meta"] == "exp/teacher_tiny/meta.yaml"
    # ... and no emotion classifier either: its auxiliary loss is off
    assert yaml.safe_load((semantic / "config.yaml").read_text())["aux_conf"]["weight"] == 0
    assert yaml.safe_load((exp / "config.yaml").read_text())["aux_conf"]["weight"] > 0
    # Stage 6 pre-trained each encoder without the LLM (CTC on the transcript) and aligned from there
    for d in (exp, semantic):
        pre = yaml.safe_load((d / "pretrain" / "config.yaml").read_text())
        assert pre["encoder_only"] is True and pre["max_epoch"] == 1
        assert pre["ctc_conf"] == {"weight": 1.0} and yaml.safe_load((d / "config.yaml").read_text())["ctc_conf"] == {
            "weight": 0.5}  # pretrain_conf's nested ctc_conf, parsed (not the key "weight:1.0")
        assert {f for _, f, _ in pre["train_data_path_and_name_and_type"]} >= {"speech", "transcript"}
        assert "response" not in {f for _, f, _ in pre["train_data_path_and_name_and_type"]}
        assert "loss_ctc" in (d / "pretrain" / "train.log").read_text()
        assert yaml.safe_load((d / "config.yaml").read_text())["init_param"] == [str(d.relative_to(recipe) / "pretrain" / "valid.loss.best.pth")]
    assert "emotion_label" not in {f for _, f, _ in yaml.safe_load(
        (semantic / "pretrain" / "config.yaml").read_text())["train_data_path_and_name_and_type"]}
    calibration = json.loads((recipe / "exp" / "judge" / "calibration.json").read_text())
    systems = {"ParaAlign": exp / "decode", "semantic": semantic / "decode"}
    for name in ("topline", "text_oracle", "text_asr", "reworded", "cls", "cls_asr"):
        systems[name] = recipe / "exp" / "baselines" / name
    for name, root in systems.items():
        for split in ("test", "test_unseen"):
            scores = json.loads((root / split / "scores.json").read_text())
            assert 0 <= scores["rougeL"] <= 1 and 0 <= scores["emotion_WA"] <= 1, name
            # Minimal pairs are formed for every system; with the random tiny LLM the teacher may give
            # every emotion of a sentence the same reply, and such pairs are set apart, not scored.
            assert scores["pairs"] + scores["pairs_equal_teacher"] > 0, name
            assert ("judge_score" in scores) == calibration["passed"], name  # a judge scores once calibrated
            lo, hi = scores["emotion_WA_ci"]
            assert lo <= scores["emotion_WA"] <= hi and len(scores["pair_sensitivity_ci"]) == 2, name
            # what was said: the sentence match of every reply, the words of every speech system
            assert 0 <= scores["sentence_match"] <= 1 and 0 <= scores["reply_emotion_WA"] <= 1, name
            assert ("wer" in scores) == (name in ("ParaAlign", "semantic", "text_asr", "cls_asr")), name
    topline = json.loads((systems["topline"] / "test" / "scores.json").read_text())
    assert topline["rougeL"] == 1.0  # the teacher scored against itself
    # Pairs whose teacher replies share every word cannot be told apart even by the teacher itself.
    for name, root in systems.items():
        other = json.loads((root / "test" / "scores.json").read_text())
        assert topline["pair_sensitivity"] >= other["pair_sensitivity"], name
    # "True emotion, no words": training replies of the right emotion, scored like a system, with no LLM run
    only = recipe / "exp" / "baselines" / "emotion_only"
    train_replies = set(datadir.read_kv(recipe / "exp" / "teacher_tiny" / "train" / "response").values())
    for split in ("test", "test_unseen"):
        assert set(datadir.read_kv(only / split / "text").values()) <= train_replies
        s = json.loads((only / split / "scores.json").read_text())
        assert "emotion_WA" not in s and s["pairs"] + s["pairs_equal_teacher"] > 0
    main = json.loads((systems["ParaAlign"] / "test" / "scores.json").read_text())
    assert 0 <= main["probe_acc"] <= 1
    # speaker_norm: the emotion question also asked of each file alone, in the same decoding process
    decoded = exp / "decode" / "test"
    assert datadir.read_kv(decoded / "emotion_alone").keys() == datadir.read_kv(decoded / "emotion").keys()
    assert 0 <= main["emotion_alone_WA"] <= 1 and not list((decoded / "logdir").glob("decode_alone.*"))
    kinds = {"ParaAlign": "paraalign", "semantic": "semantic", "topline": "topline", "text_oracle": "text_oracle",
             "text_asr": "text_asr", "reworded": "reworded", "cls": "cls", "cls_asr": "cls_asr"}
    # The reworded reference: the teacher's prompts with the emotion clause in palign.sh's other words
    for view, clause in ((systems["reworded"] / "test" / "view", "(The user feels "),
                         (systems["topline"] / "test" / "view", "(The user sounds ")):
        prompts = datadir.read_kv(view / "response_prompt").values()
        assert prompts and all(p.startswith(clause) for p in prompts), view
    for name, root in systems.items():  # every system declares itself; stage 12 reads these
        declared = yaml.safe_load((root / "test" / "system.yaml").read_text())
        assert declared["kind"] == kinds[name] and declared["teacher"]["llm_fingerprint"] == meta["llm_fingerprint"]
    declared = yaml.safe_load((systems["semantic"] / "test" / "system.yaml").read_text())
    assert declared["training_target"] == "exp/teacher_tiny/train/response_neutral" and declared["train_steps"] == 6
    results = (recipe / "exp" / "smoke" / "RESULTS.md").read_text()
    assert "| ParaAlign (train_tiny) | 6 | – | 2 |" in results and "| Semantic-only alignment (train_tiny) | 6 | – | 2 |" in results
    assert "| Topline: transcript + true emotion (the teacher) |" in results and "Pre-train steps" in results
    assert "| Cascade: emotion classifier (ESPnet cls) + Whisper tiny.en ASR |" in results
    assert "| Reference: true emotion, no words (teacher replies of that emotion to other sentences) |" in results
    assert "| Reference: transcript + true emotion in other words (the teacher's emotion clause reworded) |" in results
    assert "## test_unseen" in results and "images/train_curves.png" in results and "| total |" in results
    assert "WER by prompting [95% CI]" in results and "Sent. match [95% CI]" in results
    assert ("Failed calibration" in results) != calibration["passed"]
    assert (recipe / "exp" / "smoke" / "images" / "confusion_test.png").exists()
    assert not (recipe / "RESULTS.md").exists() and not (recipe / "images").exists()  # smoke: never the committed report

    # Ablations on top of the run: two variants, one seed, each trained/decoded/scored in its own dir, then
    # the section in RESULTS.md; the main tables do not pick up the variants' systems. paper_semantic is the
    # paper's setup (conf/ablations.yaml's `paper` and its options) aligned to the replies to the bare transcript.
    proc = run(["local/run_ablations.sh", "--llm", "tiny", "--variants", "paper_semantic transcript", "--seeds", "1"],
               cwd=recipe)
    abl = recipe / "exp" / "ablations"
    for v, model in (("paper_semantic", "palign_paper_semantic_response_neutral"), ("transcript", "palign_transcript")):
        assert (abl / f"{v}_seed0" / ".done").exists() and int((abl / f"{v}_seed0" / "wall_seconds").read_text()) > 0
        assert (abl / f"{v}_seed0" / model / "decode" / "test" / "scores.json").exists()
    assert yaml.safe_load((abl / "conf" / "transcript.yaml").read_text())["student_prompts"]["response"] == "<speech> {text}"
    paper = yaml.safe_load((abl / "conf" / "paper_semantic.yaml").read_text())  # the reply task alone, no emotion ratio
    assert paper["tasks"] == ["response"] and paper["task_conf"] is None and paper["pretrain_conf"] is None
    assert "palign_target" not in paper  # palign.sh's option, not a training key
    results = (recipe / "exp" / "smoke" / "RESULTS.md").read_text()
    assert "## Ablations" in results and "ParaAlign (main)" not in results and "| Emo WA, file alone |" in results
    assert "| Pair sens. | Reply emo | ROUGE-L |" in results
    rows = [line for line in results.splitlines() if line.startswith(("| paper_semantic |", "| transcript |"))]
    assert len(rows) == 4, rows  # two variants x two test sets
    assert ("| paper_semantic | `{aux_conf: {weight: 0}, ctc_conf: {weight: 0}, frontend_conf: {pitch_features: []}, "
            "palign_target: response_neutral, pretrain_conf: null, speaker_norm: false, speaker_norm_dropout: 0, "
            "task_conf: null, tasks: [response]}` | 0 | 6 |") in results
    # a change with a line break in it stays on its table row
    assert ("| transcript | `{student_prompts: {emotion: '<speech> {text}\\nWhat emotion do you hear in my voice? "
            "Answer with one word.', response: '<speech> {text}'}}` | 0 | 6 |") in results
    # transcript: the words in the student turn; training read the text file, decoding each set's own text
    trained = yaml.safe_load((abl / "transcript_seed0" / "palign_transcript" / "config.yaml").read_text())
    assert trained["prompt_conf"]["student"]["response"] == "<speech> {text}"
    decoded = abl / "transcript_seed0" / "palign_transcript" / "decode" / "test"
    assert datadir.read_kv(decoded / "text").keys() == datadir.read_kv(recipe / "dump" / "raw" / "test" / "text").keys()
    assert "the prompt reads the transcript: from" in (decoded / "logdir" / "decode.1.log").read_text()
    again = run(["local/run_ablations.sh", "--llm", "tiny", "--variants", "paper_semantic main no_ctc prealign",
                 "--seeds", "1"], cwd=recipe)
    # no_ctc: the alignment has no CTC head; it starts from the pre-training (which has one) less that head
    no_ctc = yaml.safe_load((abl / "no_ctc_seed0" / "palign_no_ctc" / "config.yaml").read_text())
    assert no_ctc["ctc_conf"] == {"weight": 0} and no_ctc["init_param"] == [
        "exp/ablations/no_ctc_seed0/palign_no_ctc/pretrain/valid.loss.best.pth:::ctc."]
    # prealign: the first of the 2 epochs is the semantic-only model's (its own CTC-only pre-training, the _neutral
    # targets, no emotion classifier), trained first in stage 6; the emotion alignment starts from its epoch 1
    d = abl / "prealign_seed0"
    assert yaml.safe_load((d / "palign_prealign" / "prealign.yaml").read_text()) == {
        "model_dir": "exp/ablations/prealign_seed0/palign_prealign_response_neutral", "epoch": 1}
    trained = yaml.safe_load((d / "palign_prealign" / "config.yaml").read_text())
    assert trained["max_epoch"] == 1 and trained["init_param"] == ["exp/ablations/prealign_seed0/palign_prealign/prealign.pth"]
    sem = yaml.safe_load((d / "palign_prealign_response_neutral" / "config.yaml").read_text())
    assert sem["max_epoch"] == 1 and sem["aux_conf"]["weight"] == 0 and "exp/ablations/prealign_seed0/teacher_tiny/train/" \
        "response_neutral" in [path for path, _, _ in sem["train_data_path_and_name_and_type"]]
    assert (d / "palign_prealign_response_neutral" / "pretrain" / "valid.loss.best.pth").exists()
    assert not (d / "palign_prealign" / "pretrain").exists()
    log = again.stdout + again.stderr
    assert log.index("Stage 6: training -> exp/ablations/prealign_seed0/palign_prealign_response_neutral") < log.index(
        "Stage 6: training -> exp/ablations/prealign_seed0/palign_prealign ")
    declared = yaml.safe_load((d / "palign_prealign" / "decode" / "test" / "system.yaml").read_text())
    assert (declared["train_steps"], declared["prealign_steps"], declared["pretrain_steps"]) == (6, 3, 2)
    assert "paper_semantic_seed0: done before; skipped" in again.stdout + again.stderr
    # main at the main run's seed is the main run's model: its scores are copied, not trained again
    reused = abl / "main_seed0" / "palign_main" / "decode"
    assert not (abl / "main_seed0" / "palign_main" / "train.log").exists()
    for split in ("test", "test_unseen"):
        assert (reused / split / "scores.json").read_text() == (exp / "decode" / split / "scores.json").read_text()
    results = (recipe / "exp" / "smoke" / "RESULTS.md").read_text().splitlines()
    assert len([line for line in results if line.startswith(("| main |", "| paper_semantic |"))]) == 4
    # paper_semantic: the paper's setup aligned to the replies to the bare transcript (palign.sh's target)
    semantic = abl / "paper_semantic_seed0" / "palign_paper_semantic_response_neutral"
    declared = yaml.safe_load((semantic / "decode" / "test" / "system.yaml").read_text())
    assert declared["kind"] == "semantic" and declared["training_target"].endswith("teacher_tiny/train/response_neutral")


def test_synth_emo_dumped_features_and_pretraining_sets(tmp_path):
    """--feats_type extracted: stage 3 dumps the frozen Whisper frontend's features once and stages 5-6 read
    them; --pretrain_sets: the encoder pre-training reads train + train_words (no teacher targets for it),
    whose features are the parts' own, not computed again."""
    recipe = synth_emo_recipe(tmp_path)
    conf = yaml.safe_load((ROOT / "conf" / "smoke" / "train.yaml").read_text())
    conf.update(frontend="whisper_pitch", frontend_conf={"pitch_features": ["log_f0", "rel_log_f0", "voicing"]},
                encoder="transformer", encoder_conf={"output_size": 32, "attention_heads": 2, "linear_units": 64,
                                                     "num_blocks": 1, "input_layer": "conv1d2"})
    (recipe / "conf" / "train_tiny_whisper.yaml").write_text(yaml.safe_dump(conf))
    small = ("--train_voices 2 --sentences_per_train_voice 2 --valid_voices 1 --sentences_per_valid_voice 2 "
             "--num_test_sentences 1 --num_test_unseen_sentences 1 --words_utterances 6")
    run(["./run.sh", "--llm", "tiny", "--stop_stage", "6", "--local_data_opts", small, "--feats_type", "extracted",
         "--pretrain_sets", "train_words", "--palign_config", "conf/train_tiny_whisper.yaml"], cwd=recipe)
    from espnet_ext.bin.dump_feats import dir_name

    feats = recipe / "dump" / dir_name(recipe / "conf" / "train_tiny_whisper.yaml")
    train, words = (set(datadir.read_kv(recipe / "dump" / "raw" / d / "wav.scp")) for d in ("train", "train_words"))
    assert len(train) == 2 * 2 * 4 and len(words) == 6
    for d in ("train", "valid", "test", "test_unseen", "train_words"):
        assert set(datadir.read_kv(feats / d / "feats.scp")) == set(datadir.read_kv(recipe / "dump" / "raw" / d / "wav.scp"))
    combined = datadir.read_kv(feats / "train_pretrain" / "feats.scp")
    assert set(combined) == train | words
    assert {v.split(":")[0] for v in combined.values()} == {f"dump/{feats.name}/train/feats.ark",
                                                             f"dump/{feats.name}/train_words/feats.ark"}
    assert (recipe / "exp" / "teacher_tiny" / "train").is_dir() and not (recipe / "exp" / "teacher_tiny" / "train_words").exists()  # no teacher targets
    exp = recipe / "exp" / "palign_train_tiny_whisper"
    pre = yaml.safe_load((exp / "pretrain" / "config.yaml").read_text())
    data = {f: path for path, f, _ in pre["train_data_path_and_name_and_type"]}
    assert data["speech"] == f"dump/{feats.name}/train_pretrain/feats.scp" and data["transcript"].endswith(
        "train_pretrain/text")
    shape = recipe / pre["train_shape_file"][0]  # relative to the recipe dir (an absolute path stays as it is)
    assert set(datadir.read_kv(shape)) == train | words
    main = yaml.safe_load((exp / "config.yaml").read_text())
    data = {f: path for path, f, _ in main["train_data_path_and_name_and_type"]}
    assert data["speech"] == f"dump/{feats.name}/train/feats.scp" and "response" in data
    assert "2epoch results" in (exp / "train.log").read_text()
