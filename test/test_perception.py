"""What makes the LLM hear the emotion: the pitch frontend, speaker normalisation, the auxiliary loss, and
the metrics that judge it (bootstrap intervals, judge calibration)."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import make_data_dir, tiny_train_args
from espnet_ext import metrics
from espnet_ext.bin import judge, speaker_stats
from espnet_ext.palign.frontend import MelPitchFrontend, yin_pitch
from espnet_ext.tasks.palign import PalignTask


@pytest.mark.parametrize("f0", [70.0, 110.0, 196.0, 261.6, 440.0])
def test_pitch_of_a_tone_within_two_percent(f0):
    fs = 16000
    t = torch.arange(int(0.8 * fs)) / fs
    x = 0.3 * torch.sin(2 * math.pi * f0 * t) + 0.1 * torch.sin(2 * math.pi * 2 * f0 * t)  # with a harmonic
    est, voicing = yin_pitch(x[None], fs)
    inner = est[0, 5:-5]
    assert torch.all(inner > 0) and torch.all(voicing[0, 5:-5] > 0.8)
    assert torch.all((inner / f0 - 1).abs() < 0.02)
    silence, v = yin_pitch(torch.zeros(1, fs), fs)
    assert torch.all(silence == 0) and torch.all(v == 0)


def test_mel_pitch_frontend_keeps_level_and_frames():
    fe = MelPitchFrontend(n_mels=20)
    fs = 16000
    t = torch.arange(fs) / fs
    tone = 0.05 * torch.sin(2 * math.pi * 150 * t)
    speech = torch.stack([tone, 4 * tone])
    feats, lengths = fe(speech, torch.tensor([fs, fs // 2]))
    assert feats.shape == (2, fs // 160 + 1, 23) and lengths.tolist() == [101, 51]
    # 4x the amplitude is 16x the power: the log-mel of the tone's band rises by ln 16 (s3prl's mel, with
    # per-utterance CMVN, would remove the difference)
    band = feats[0, 10:40, :20].mean(0).argmax()
    assert (feats[1, 10:40, band] - feats[0, 10:40, band]).mean().item() == pytest.approx(math.log(16), abs=0.05)
    log_f0, rel, voicing = feats[0, 10:90, 20], feats[0, 10:90, 21], feats[0, 10:90, 22]
    assert torch.allclose(log_f0 + 5.0, torch.full_like(log_f0, math.log(150.0)), atol=0.02)
    assert rel.abs().max() < 0.02 and voicing.min() > 0.8


def test_whisper_pitch_frontend_frames_pitch_and_level():
    from espnet_ext.palign.frontend import WhisperPitchFrontend
    fe = WhisperPitchFrontend()  # the offline Whisper tiny.en of tools/install.sh
    assert fe.output_size() == 384 + 4 and list(fe.state_dict()) == []  # frozen, in no checkpoint
    fs = 16000
    t = torch.arange(fs) / fs
    tone = 0.05 * torch.sin(2 * math.pi * 150 * t)
    speech = torch.stack([tone, 4 * tone])
    feats, lengths = fe(speech, torch.tensor([fs, fs // 2]))
    assert lengths.tolist() == [50, 25] and feats.shape[0] == 2 and feats.shape[2] == 388  # 50 frames/s
    assert torch.all(feats[1, 25:] == 0) and torch.isfinite(feats).all()
    log_f0, voicing, energy = feats[:, 5:20, 384], feats[:, 5:20, 386], feats[:, 5:20, 387]
    assert torch.allclose(log_f0 + 5.0, torch.full_like(log_f0, math.log(150.0)), atol=0.02)
    assert voicing.min() > 0.8
    assert (energy[1] - energy[0]).mean().item() == pytest.approx(math.log(16), abs=0.05)  # level kept


def test_dumped_whisper_features_equal_the_frontends_for_a_file(tmp_path, tiny_llm):
    """Stage 3's dump of a file is what the frontend gives that file in the model, alone or in a batch (Whisper
    has no padding mask, so each utterance is encoded alone); a rerun recomputes nothing; and a model fed
    the dumped features (B, T, D) encodes them as it encodes the audio."""
    import kaldiio
    import soundfile
    import yaml

    from espnet_ext.audio import resample
    from espnet_ext.bin import dump_feats
    from espnet_ext.palign.frontend import WhisperPitchFrontend
    from espnet_ext.synth.espeak import Espeak

    engine = Espeak()
    data = tmp_path / "data"
    data.mkdir()
    waves = {}
    for utt, text in (("u1", "I saw him again at the station."), ("u2", "Good morning.")):
        waves[utt] = resample(engine.synth(text, "en-us"), engine.sample_rate, 16000).astype(np.float32)
        soundfile.write(str(data / f"{utt}.wav"), waves[utt], 16000, subtype="FLOAT")
    (data / "wav.scp").write_text("".join(f"{u} {data / u}.wav\n" for u in waves))
    conf = {"frontend": "whisper_pitch", "frontend_conf": {"pitch_features": ["log_f0", "rel_log_f0", "voicing"]}}
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(conf))
    out = tmp_path / "feats"
    args = ["--train_config", str(config), "--data_dir", str(data), "--out_dir", str(out)]
    assert dump_feats.main(args) == 0
    dumped = dict(kaldiio.load_scp(str(out / "feats.scp")))
    fe = WhisperPitchFrontend(**conf["frontend_conf"])
    lengths = torch.tensor([len(waves["u1"]), len(waves["u2"])])
    batch = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(waves[u]) for u in ("u1", "u2")], batch_first=True)
    feats, feat_lengths = fe(batch, lengths)
    for i, utt in enumerate(("u1", "u2")):
        assert dumped[utt].shape == (int(feat_lengths[i]), 388)
        np.testing.assert_allclose(dumped[utt], feats[i, : feat_lengths[i]].numpy(), rtol=0, atol=1e-5)
    assert (out / "feats_shape").read_text().split("\n")[0] == f"u1 {int(feat_lengths[0])},388"
    ark_time = (out / "feats.ark").stat().st_mtime_ns
    assert dump_feats.main(args) == 0 and (out / "feats.ark").stat().st_mtime_ns == ark_time  # up to date
    name = dump_feats.dir_name(config)
    conf["frontend_conf"]["pitch_features"] = ["voicing"]  # another frontend: the dump is redone
    config.write_text(yaml.safe_dump(conf))
    assert dump_feats.dir_name(config) != name and name.startswith("feats_whisper_pitch_")  # palign.sh: its own dir
    assert dump_feats.main(args) == 0
    assert next(iter(kaldiio.load_scp(str(out / "feats.scp")).values())).shape[1] == 386

    model = _build(tiny_llm).eval()  # any frontend: (B, T, D) input skips it
    wave = torch.from_numpy(waves["u2"])[None]
    n = torch.tensor([wave.shape[1]])
    with torch.no_grad():
        x, x_len = model.frontend(wave, n)
        from_audio = model.encode(wave, n)[0]
        from_feats = model.encode(x, x_len)[0]
    torch.testing.assert_close(from_feats, from_audio)
    with pytest.raises(ValueError, match="dumped features are 2-dim.*another frontend_conf"):
        model.encode(x[..., :2], x_len)  # features dumped by another frontend_conf: said, not a shape error


def test_whisper_batched_short_window_transcripts(caplog):
    """Batched transcription pads to a 10 s window (or 30 s for longer audio) and reads the words right;
    one file's transcript logs nothing (faster-whisper's per-file line would flood a corpus's stage 1)."""
    import logging
    from espnet_ext.whisper_asr import WhisperASR
    from espnet_ext.synth.espeak import Espeak
    from espnet_ext.audio import resample

    engine = Espeak()
    speech = resample(engine.synth("I saw him again at the station.", "en-us"), engine.sample_rate, 16000)
    longer = np.concatenate([speech, np.zeros(16000 * 11, dtype=np.float32)])  # 12+ s: the 30 s window
    asr = WhisperASR()
    texts = asr.transcribe_batch([speech, longer, speech], batch_size=2)
    assert len(texts) == 3 and texts[0] == texts[2]  # the same audio alone or beside another in a batch
    for text in texts[:2]:
        assert "again" in text.lower() and "station" in text.lower(), texts
    caplog.set_level(logging.INFO)
    assert "station" in asr.transcribe_words(speech)[-1][0].lower()
    assert not [r for r in caplog.records if r.name.startswith("faster_whisper")]


def _batch(model, n=4, seconds=0.6):
    torch.manual_seed(1)
    speech = torch.randn(n, int(16000 * seconds)) * 0.1
    lengths = torch.tensor([speech.shape[1] - 800 * i for i in range(n)])
    vocab = model.llm.model.get_input_embeddings().weight.shape[0]
    reply = torch.randint(10, vocab - 10, (n, 5))
    return dict(speech=speech, speech_lengths=lengths, response=reply, response_lengths=torch.full((n,), 5))


def _build(llm, *extra):
    return PalignTask.build_model(PalignTask.get_parser().parse_args(tiny_train_args(llm) + list(extra)))


def test_aux_loss_weight_zero_is_the_pure_alignment_loss(tiny_llm):
    torch.manual_seed(0)
    plain = _build(tiny_llm).eval()
    torch.manual_seed(0)
    zero = _build(tiny_llm, "--aux_conf", "weight=0", "--aux_conf", "labels=[happy,sad]").eval()
    assert zero.aux_head is None and set(plain.state_dict()) == set(zero.state_dict())
    batch = _batch(plain)
    labels = torch.tensor([[0], [1], [0], [1]])
    assert torch.equal(plain(**batch)[0], zero(**batch, emotion_label=labels)[0])
    torch.manual_seed(0)
    on = _build(tiny_llm, "--aux_conf", "weight=0.5", "--aux_conf", "labels=[happy,sad]").eval()
    loss, stats, _ = on(**batch, emotion_label=labels)
    assert torch.allclose(loss, stats["loss_align"] + 0.5 * stats["loss_aux"])
    assert torch.allclose(stats["loss_align"], plain(**batch)[1]["loss"])  # same encoder init, same alignment
    with pytest.raises(ValueError, match="emotion_label"):
        on(**batch)


def test_ctc_over_the_llm_vocabulary_and_encoder_only_pretraining(tiny_llm):
    from espnet_ext.palign.model import ctc_greedy
    # best-path decoding collapses repeats and drops blanks (0)
    scores = torch.nn.functional.one_hot(torch.tensor([[0, 5, 5, 0, 7, 0]]), 10).float()
    assert ctc_greedy(scores, torch.tensor([6])) == [[5, 7]]
    torch.manual_seed(0)
    model = _build(tiny_llm, "--ctc_conf", "weight=0.3").eval()
    batch = _batch(model)
    text = torch.tensor([[11, 12, 13]] * 4)
    loss, stats, _ = model(**batch, transcript=text, transcript_lengths=torch.full((4,), 3))
    assert torch.allclose(loss, stats["loss_align"] + 0.3 * stats["loss_ctc"])
    with pytest.raises(ValueError, match="transcript"):
        model(**batch)
    # A speech token equal to a word's LLM embedding (scaled up) is read as that word by the CTC head
    table = model.llm.model.get_input_embeddings().weight
    emb = (table[[11, 11, 12, 13]] * 50)[None]
    logits = model.ctc.logits(emb, table)
    assert logits.argmax(-1).tolist() == [[12, 12, 13, 14]]  # class k + 1 is token k
    # encoder_only: no LLM pass (no target needed); the encoder and the adapter learn, the LLM does not
    pre = _build(tiny_llm, "--ctc_conf", "weight=1", "--encoder_only", "true").train()
    loss, stats, _ = pre(speech=batch["speech"], speech_lengths=batch["speech_lengths"], transcript=text,
                         transcript_lengths=torch.full((4,), 3))
    assert "loss_align" not in stats and torch.allclose(loss, stats["loss_ctc"])
    loss.backward()
    assert all(p.grad is not None for p in pre.encoder.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in pre.adapter.parameters())
    assert all(p.grad is None for p in pre.llm.model.parameters())
    with pytest.raises(ValueError, match="encoder_only"):
        _build(tiny_llm, "--encoder_only", "true")
    # the alignment starts from the pre-trained model (stage 6's --init_param): same keys, same weights
    model.load_state_dict(pre.state_dict())
    assert torch.equal(model.adapter.mlp[0].weight, pre.adapter.mlp[0].weight)


def test_speaker_norm_subtracts_the_speaker_mean(tiny_llm, tmp_path):
    model = _build(tiny_llm, "--speaker_norm", "true", "--normalize", "none").eval()
    batch = _batch(model, n=2)
    speech, lengths = batch["speech"], batch["speech_lengths"]
    raw, raw_lengths = model.frontend(speech[:, : lengths.max()], lengths)
    mean = torch.randn(2, raw.shape[-1])
    feats, _ = model._extract_feats(speech, lengths, mean)
    valid = raw_lengths[1]
    assert torch.allclose(feats[1, :valid], raw[1, :valid] - mean[1], atol=1e-5)
    assert torch.all(feats[1, valid:] == 0)
    own, _ = model._extract_feats(speech, lengths)  # no speaker mean: each utterance by itself
    assert torch.allclose(own[0].mean(0), torch.zeros(raw.shape[-1]), atol=1e-4)
    # The program behind stage 5 averages the utterance means of each speaker
    d = make_data_dir(tmp_path / "data", [("a_1", "a"), ("a_2", "a"), ("b_1", "b")])
    conf = tmp_path / "train.yaml"
    conf.write_text("frontend: mel_pitch\nfrontend_conf:\n  n_mels: 20\n")
    assert speaker_stats.main(["--train_config", str(conf), "--data_dirs", str(d), "--out", str(tmp_path / "spk")]) == 0
    scp = dict(line.split() for line in (tmp_path / "spk" / "data" / "spk_mean.scp").read_text().splitlines())
    assert scp["a_1"] == scp["a_2"] != scp["b_1"]
    from espnet_ext.tasks.palign import build_frontend

    fe = build_frontend(conf)
    means = speaker_stats.utterance_means(fe, dict(line.split() for line in (d / "wav.scp").read_text().splitlines()))
    assert np.allclose(np.load(scp["a_1"]), (means["a_1"] + means["a_2"]) / 2, atol=1e-5)
    assert np.load(scp["b_1"]).shape == (23,)


def test_speaker_norm_dropout_learns_the_average_voice_for_single_files(tiny_llm):
    model = _build(tiny_llm, "--speaker_norm", "true", "--speaker_norm_dropout", "1.0", "--normalize", "none")
    batch = _batch(model, n=2)
    speech, lengths = batch["speech"], batch["speech_lengths"]
    raw, raw_lengths = model.frontend(speech[:, : lengths.max()], lengths)
    means = [torch.randn(2, raw.shape[-1]) for _ in range(3)]
    model.train()
    for m in means:  # dropout 1: every training row is normalised by the running average of the speaker means
        feats, _ = model._extract_feats(speech, lengths, m)
    average = torch.cat(means).mean(0)
    assert torch.allclose(model.average_speaker_mean, average, atol=1e-5) and model.speaker_means_seen == 6
    assert torch.allclose(feats[0, : raw_lengths[0]], raw[0, : raw_lengths[0]] - average, atol=1e-4)
    model.eval()  # inference: the speaker's mean when given, the training average for one file alone
    given, _ = model._extract_feats(speech, lengths, means[0])
    alone, _ = model._extract_feats(speech, lengths)
    assert torch.allclose(given[1, : raw_lengths[1]], raw[1, : raw_lengths[1]] - means[0][1], atol=1e-4)
    assert torch.allclose(alone[1, : raw_lengths[1]], raw[1, : raw_lengths[1]] - average, atol=1e-4)
    assert "average_speaker_mean" in model.state_dict()  # saved with the encoder
    # Stage 7 asks "file alone" questions beside the others: a second encoding without the speaker means.
    q = {"q": ("response", None)}
    both = model.answer(speech, lengths, q, 3, means[0], alone_questions={"alone": ("response", None)})
    assert both["q"] == model.answer(speech, lengths, q, 3, means[0])["q"]
    assert both["alone"] == model.answer(speech, lengths, q, 3)["q"]
    with pytest.raises(ValueError, match="'q' is asked twice"):
        model.answer(speech, lengths, q, 3, means[0], alone_questions=q)
    with pytest.raises(ValueError, match="speaker_norm: true"):
        _build(tiny_llm, "--speaker_norm_dropout", "0.5")


def test_bootstrap_interval_hand_case():
    # 0/1 outcomes with mean 0.5: the 95 % interval holds the mean and has the binomial width (~ +-0.14)
    items = [1.0] * 25 + [0.0] * 25
    lo, hi = metrics.bootstrap_ci(items, lambda x: float(np.mean(x)), n_boot=2000)
    assert lo < 0.5 < hi and 0.2 < hi - lo < 0.36
    assert metrics.bootstrap_ci(items, lambda x: float(np.mean(x)), n_boot=2000) == (lo, hi)  # seeded
    assert metrics.bootstrap_ci([1.0] * 10, lambda x: float(np.mean(x))) == (1.0, 1.0)
    pred = {"u1": "sad", "u2": "sad", "u3": "happy", "u4": None}
    ref = {"u1": "sad", "u2": "happy", "u3": "happy", "u4": "happy"}
    scores = metrics.classification_scores(pred, ref, ["happy", "sad"])
    assert scores["WA"] == 0.5 and scores["UAR"] == pytest.approx((1 / 3 + 1) / 2)
    # F1: happy P=1 R=1/3 -> 0.5; sad P=1/2 R=1 -> 2/3
    assert scores["macro_F1"] == pytest.approx((0.5 + 2 / 3) / 2)
    cis = metrics.classification_cis(pred, ref, ["happy", "sad"], n_boot=200)
    assert cis["WA_ci"][0] <= 0.5 <= cis["WA_ci"][1]


def test_judge_calibration_decision():
    teacher = {f"u{i}": "8" for i in range(6)} | {"x": "nan", "y": "7"}
    text_only = {f"u{i}": "3" for i in range(6)} | {"x": "9", "y": "7"}
    v = judge.calibration(teacher, text_only)
    assert v["passed"] and v["utterances"] == 7 and v["of"] == 8
    assert v["teacher_wins"] == 6 and v["teacher_losses"] == 0 and v["sign_test_p"] == pytest.approx(1 / 64)
    assert v["teacher_mean"] == pytest.approx(55 / 7) and v["text_only_mean"] == pytest.approx(25 / 7)
    assert not judge.calibration(text_only, teacher)["passed"]           # ranks the text-only replies higher
    assert not judge.calibration({"a": "5"}, {"a": "5"})["passed"]         # a tie is no pass
    assert not judge.calibration({"a": "nan"}, {"a": "5"})["passed"]       # nothing parsed: no pass
    # 2 wins to 1 on 3 parsed utterances: chance, p = 0.5
    few = judge.calibration({"a": "8", "b": "7", "c": "2"}, {"a": "3", "b": "2", "c": "6"})
    assert not few["passed"] and few["sign_test_p"] == pytest.approx(0.5)
    # what SmolLM2 once passed the old rule with: 1 win, 0 losses, 7 ties on 8 parsed answers (of 96)
    once = judge.calibration({f"u{i}": ("3" if i == 0 else "1") if i < 8 else "nan" for i in range(96)},
                             {f"u{i}": "1" for i in range(96)})
    assert once["teacher_wins"] == 1 and once["sign_test_p"] == pytest.approx(0.5) and not once["passed"]
    # every parsed answer a win, but only 5 of 12 utterances parsed: too few answers to trust the judge
    sparse = judge.calibration({f"u{i}": "9" if i < 5 else "nan" for i in range(12)}, {f"u{i}": "1" for i in range(12)})
    assert sparse["teacher_wins"] == 5 and sparse["sign_test_p"] == pytest.approx(1 / 32) and not sparse["passed"]


def test_judge_calibration_run_with_a_tiny_llm(tiny_llm, tmp_path):
    d = make_data_dir(tmp_path / "valid", [("s1_a", "s1"), ("s1_b", "s1")])
    (d / "response").write_text("s1_a I am so sorry.\ns1_b That is great!\n")
    (d / "response_neutral").write_text("s1_a Okay.\ns1_b Okay.\n")
    conf = tmp_path / "judge.yaml"
    from conftest import ROOT
    conf.write_text(f"llm_conf:\n  name_or_path: {tiny_llm}\njudge_prompt: {ROOT}/conf/prompts/judge.yaml\n"
                    f"prompt_conf: {ROOT}/conf/prompts/emotion.yaml\n")
    out = tmp_path / "calibration.json"
    assert judge.main(["--config", str(conf), "--ref_dir", str(d), "--calibrate", str(out)]) == 0
    v = json.loads(out.read_text())
    assert set(v) >= {"teacher_mean", "text_only_mean", "passed", "utterances"}
    # a random tiny LLM cannot tell good replies: whatever it answers, the verdict follows the rule
    assert v["passed"] == (2 * v["utterances"] >= v["of"] > 0 and v["teacher_mean"] > v["text_only_mean"]
                           and v["sign_test_p"] <= 0.05)
