"""The embedded corpus: splits are disjoint as promised and the emotions really differ acoustically."""
import shutil
from collections import defaultdict

import librosa
import numpy as np
import pytest
import soundfile

from conftest import ROOT
from espnet_ext import datadir
from espnet_ext.synth.synth_emo import EMOTIONS, Design, FliteVoice, build, plan_splits, read_sentences

SENTENCES = ROOT / "egs" / "synth_emo" / "palign1" / "local" / "sentences.txt"
SMALL = Design(train_voices=2, valid_voices=1, num_unseen_sentences=4, sentences_per_valid_voice=2,
               num_test_sentences=4, num_test_unseen_sentences=2, sentences_per_train_voice=6)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    counts = build(SENTENCES, out / "data", out / "wav", seed=3, design=SMALL, progress=False)
    return out / "data", counts


def test_sentence_list_is_large_and_unique():
    assert len(read_sentences(SENTENCES)) >= 120


def test_splits_hold_out_voices_and_sentences():
    plan = plan_splits(160, Design(), seed=777)
    voices = {split: [v for v, _ in plan[split]] for split in plan}
    sentences = {split: {s for _, sents in plan[split] for s in sents} for split in plan}
    assert len(voices["train"]) == 40 and len({v.name for v in voices["train"]}) == 40
    train_names = {v.name for v in voices["train"]}
    for split in ("valid", "test", "test_unseen"):
        assert not train_names & {v.name for v in voices[split]}
    assert sentences["test"] <= sentences["train"]
    assert not sentences["test_unseen"] & sentences["train"]
    assert plan == plan_splits(160, Design(), seed=777)  # deterministic


def test_test_voices_are_held_out_in_variant_and_base_values():
    plan = plan_splits(160, Design(), seed=777)
    train = [v for v, _ in plan["train"]] + [v for v, _ in plan["valid"]]
    for test_voice, _ in plan["test"]:
        variant = test_voice.espeak.split("+")[1]
        assert all(v.espeak.split("+")[1] != variant for v in train)
        assert all(abs(v.pitch - test_voice.pitch) >= 3 and abs(v.rate - test_voice.rate) >= 3 for v in train)
    # the training voices spread over base pitch and rate, so absolute values cannot tell the emotion
    pitches = [v.pitch for v in train]
    assert max(pitches) - min(pitches) >= 35 and len({v.espeak for v in train}) >= 20


def test_data_dirs_valid_and_minimal_pairs(corpus):
    data, counts = corpus
    assert counts["test"] == {"utterances": 2 * 4 * 4, "speakers": 2, "emotions": 4, "sentences": 4}
    for split in counts:
        assert datadir.validate(data / split)["utterances"] == counts[split]["utterances"]
    emo = datadir.read_kv(data / "test" / "utt2emo")
    sent = datadir.read_kv(data / "test" / "utt2sentid")
    by_sentence = defaultdict(set)
    for utt, s in sent.items():
        by_sentence[s].add(emo[utt])
    assert all(emos == set(EMOTIONS) for emos in by_sentence.values())
    info = soundfile.info(datadir.read_kv(data / "test" / "wav.scp")[next(iter(emo))])
    assert info.samplerate == 16000 and info.channels == 1


def _prosody(path):
    x, sr = soundfile.read(path)
    f0 = librosa.yin(x, fmin=60, fmax=500, sr=sr, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0]
    n = min(len(f0), len(rms))
    voiced = rms[:n] > 0.1 * rms.max()
    return np.median(f0[:n][voiced]), np.sqrt(np.mean(x ** 2)), len(x) / sr


def test_emotions_differ_in_pitch_energy_and_rate(corpus):
    data, _ = corpus
    emo = datadir.read_kv(data / "test" / "utt2emo")
    feats = defaultdict(list)
    for utt, path in datadir.read_kv(data / "test" / "wav.scp").items():
        feats[emo[utt]].append(_prosody(path))
    f0, energy, dur = ({e: np.median([f[i] for f in v]) for e, v in feats.items()} for i in range(3))
    # Happy is highest and sad lowest in pitch; angry is loudest, sad quietest; sad is slowest.
    assert f0["happy"] > f0["angry"] > f0["neutral"] > f0["sad"]
    assert f0["happy"] > 1.2 * f0["neutral"] and f0["sad"] < 0.9 * f0["neutral"]
    assert energy["angry"] > energy["happy"] > energy["neutral"] > energy["sad"]
    assert energy["angry"] > 1.5 * energy["neutral"] and energy["sad"] < 0.7 * energy["neutral"]
    assert dur["sad"] > 1.4 * dur["neutral"] > 1.4 * 0.9 * dur["angry"]


def test_synthesis_is_reproducible_across_processes():
    """espeak-ng seeds its noise from the clock: the corpus must not. The same utterance synthesised in two
    fresh processes, a second apart (a new clock seed), gives the same samples with the same seed."""
    import hashlib
    import subprocess
    import sys
    import time

    code = ("import hashlib, sys; from espnet_ext.synth.espeak import Espeak; "
            "x = Espeak().synth('I lost my keys again today.', 'en-us+f3', seed=int(sys.argv[1]), rate=168, "
            "pitch=62, range=60, volume=150); print(hashlib.md5(x.tobytes()).hexdigest())")
    runs = []
    for seed in (5, 5, 6):
        runs.append(subprocess.run([sys.executable, "-c", code, str(seed)], capture_output=True, text=True,
                                   check=True, cwd=ROOT).stdout.strip())
        time.sleep(1.1)
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(runs[0]) == len(hashlib.md5().hexdigest())


def test_flite_train_voices_leave_the_espeak_plan_as_it_was():
    """A second training synthesiser adds voices; the espeak-ng voices, their sentences and every other split
    are the corpus without it (committed results stay comparable), and the Flite voices speak no unseen sentence."""
    base = plan_splits(160, Design(), seed=777)
    plan = plan_splits(160, Design(flite_train_voices=3), seed=777)
    assert plan["train"][:40] == base["train"]
    assert all(plan[split] == base[split] for split in ("valid", "test", "test_unseen"))
    flite = plan["train"][40:]
    assert [v.flite for v, _ in flite] == ["slt", "awb", "kal16"] and all(isinstance(v, FliteVoice) for v, _ in flite)
    assert len({v.name for v, _ in plan["train"]}) == 43 and len(plan["train_words"]) == 43
    unseen = {s for _, sents in base["test_unseen"] for s in sents}
    assert all(len(sents) == 16 and not set(sents) & unseen for _, sents in flite)


def test_flite_train_voices_need_flite(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no flite program
    with pytest.raises(SystemExit, match="apt-get install flite"):
        build(SENTENCES, tmp_path / "data", tmp_path / "wav", design=Design(flite_train_voices=1), progress=False)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed (tools/install.sh --voices)")
def test_flite_train_voices_portray_the_emotions(tmp_path):
    design = Design(train_voices=1, valid_voices=1, num_unseen_sentences=4, sentences_per_train_voice=3,
                    flite_train_voices=1)
    counts = build(SENTENCES, tmp_path / "data", tmp_path / "wav", seed=3, design=design, splits=("train",),
                   progress=False)
    assert counts["train"]["speakers"] == 2 and datadir.validate(tmp_path / "data" / "train")["utterances"] == 24
    spk = datadir.read_kv(tmp_path / "data" / "train" / "utt2spk")
    emo = datadir.read_kv(tmp_path / "data" / "train" / "utt2emo")
    feats = defaultdict(list)
    for utt, path in datadir.read_kv(tmp_path / "data" / "train" / "wav.scp").items():
        if spk[utt] == "flt001":
            feats[emo[utt]].append(_prosody(path))
    assert sum(len(v) for v in feats.values()) == 12
    f0, energy, dur = ({e: np.median([f[i] for f in v]) for e, v in feats.items()} for i in range(3))
    assert f0["happy"] > f0["angry"] > f0["neutral"] > f0["sad"]
    assert energy["angry"] > energy["neutral"] > energy["sad"] and dur["sad"] > 1.4 * dur["neutral"]


def test_reply_word_share_on_a_hand_case(tmp_path):
    """local/reply_word_share.py: the clause's share and the share of the transcript's own content words."""
    from conftest import run

    (tmp_path / "teacher" / "test").mkdir(parents=True)
    (tmp_path / "data" / "test").mkdir(parents=True)
    datadir.write_kv(tmp_path / "teacher" / "test" / "response",
                     {"u1": "(The user sounds sad.) Your keys will turn up.", "u2": "I am sorry."})
    datadir.write_kv(tmp_path / "data" / "test" / "text", {"u1": "I lost my keys", "u2": "The flight left early"})
    cmd = ["python", str(ROOT / "egs" / "synth_emo" / "palign1" / "local" / "reply_word_share.py"),
           "--teacher", str(tmp_path / "teacher"), "--data", str(tmp_path / "data"), "--sets", "test"]
    out = run(cmd).stdout
    # 12 words in all; the clause's 4 words open one of the two replies; "keys" is u1's own content word
    assert out.splitlines()[1] == "test\t2\t6.0\t0.500\t0.333\t0.083"
    datadir.write_kv(tmp_path / "data" / "test" / "text", {"u1": "I lost my keys"})  # u2's line lost
    missing = run(cmd, check=False)
    assert missing.returncode != 0 and "1 of 2 replies have no transcript (first: u2)" in missing.stderr
