"""Corpus recipes on fake releases in the exact on-disk formats (generated here, never committed):
stage 1-2 through each recipe's run.sh, checking counts, labels, transcripts, speakers and audio."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from conftest import ROOT, TEMPLATE, run
from espnet_ext import datadir
from espnet_ext.corpora import expresso, iemocap, msp_podcast


def tone(path: Path, seconds: float, fs: int, channels: int = 1, freq: float = 220.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * fs)) / fs
    x = 0.2 * np.sin(2 * np.pi * freq * t)
    soundfile.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, fs)


# -- fake releases ---------------------------------------------------------------------------------

IEMOCAP_UTTS = [  # (utterance suffix, label, transcript)
    ("F000", "neu", "Excuse me."), ("M000", "hap", "That is great."), ("F001", "exc", "Oh wow!"),
    ("M001", "xxx", "Well."), ("F002", "ang", "Stop [BREATHING] it."), ("M002", "sad", "I miss her. [LAUGHTER]"),
    ("F003", "fru", "Not again."),
]


def make_iemocap(root: Path, varied: bool = False) -> Path:
    """``varied``: each dialog says its own sentences (the emotion-only baseline needs a training reply of
    the same emotion to another sentence)."""
    for s in range(1, 6):
        sess = root / f"Session{s}"
        for dialog in (f"Ses0{s}F_impro01", f"Ses0{s}M_script02_1"):
            evals = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = []
            for i, (suffix, label, text) in enumerate(IEMOCAP_UTTS):
                utt = f"{dialog}_{suffix}"
                text = f"{text} In {dialog[6:]} of session {s}." if varied else text
                evals += [f"[{i * 2.5:.4f} - {i * 2.5 + 2:.4f}]\t{utt}\t{label}\t[2.5000, 3.0000, 3.5000]",
                          "C-E1:\tNeutral state;\t()", "A-E2:\tval 3; act 2; dom  3;\t()", ""]
                trans.append(f"{utt} [{i * 2.5:08.4f}-{i * 2.5 + 2:08.4f}]: {text}")
                tone(sess / "sentences" / "wav" / dialog / f"{utt}.wav", 0.4, 16000)
            trans.append(f"{dialog}_MXX0 [030.0000-031.0000]: [LAUGHTER]")  # no label: ignored
            (sess / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (sess / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evals) + "\n")
            (sess / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (sess / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n")
    return root


MSP_ROWS = [  # FileName, EmoClass, SpkrID, Gender, Split_Set, has transcript
    ("MSP-PODCAST_0001_0001.wav", "H", "127", "Female", "Train", True),
    ("MSP-PODCAST_0001_0002.wav", "N", "Unknown", "Unknown", "Train", True),
    ("MSP-PODCAST_0001_0003.wav", "X", "127", "Female", "Train", True),
    ("MSP-PODCAST_0001_0004.wav", "S", "Unknown", "Unknown", "Train", True),
    ("MSP-PODCAST_0002_0001.wav", "A", "55", "Male", "Development", True),
    ("MSP-PODCAST_0002_0002.wav", "S", "Unknown", "Unknown", "Test1", True),
    ("MSP-PODCAST_0003_0001.wav", "O", "56", "Male", "Test2", True),
    ("MSP-PODCAST_0003_0002.wav", "U", "56", "Male", "Test2", True),
    ("MSP-PODCAST_0003_0003.wav", "C", "56", "Male", "Test2", False),
]


def make_msp(root: Path, spelling: str = "labels_consensus.csv", varied: bool = False) -> Path:
    """``varied``: every test class is in the training split too (what the emotion-only baseline needs)."""
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    (root / "Transcripts").mkdir(parents=True, exist_ok=True)
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    more = [("MSP-PODCAST_0004_0001.wav", "U", "57", "Male", "Train", True),
            ("MSP-PODCAST_0004_0002.wav", "A", "57", "Male", "Train", True)] if varied else []
    for i, (name, emo, spk, gender, split, has_text) in enumerate(MSP_ROWS + more):
        lines.append(f"{name},{emo},4.2,3.8,4.0,{spk},{gender},{split}")
        tone(root / "Audios" / name, 0.5, 16000)
        if has_text:
            (root / "Transcripts" / name.replace(".wav", ".txt")).write_text(f"podcast [laughter] sentence {i}\n")
    (root / "Labels" / spelling).write_text("\n".join(lines) + "\n")
    return root


def make_expresso(root: Path, varied: bool = False) -> Path:
    """``varied``: the test styles are in the training split too, with other sentences (what the
    emotion-only baseline needs)."""
    audio = root / "audio_48khz"
    more = {"read/ex01/whisper/base/ex01_whisper_00005.wav": 0.6,
            "read/ex01/laughing/base/ex01_laughing_00006.wav": 0.6} if varied else {}
    files = {**more,
        "read/ex01/happy/base/ex01_happy_00001.wav": 0.6,
        "read/ex01/default/base/ex01_default_emphasis_00002.wav": 0.6,
        "read/ex01/sad/base/ex01_sad_00003.wav": 0.6,
        "read/ex02/whisper/base/ex02_whisper_00001.wav": 0.6,
        "read/ex02/laughing/base/ex02_laughing_00004.wav": 0.6,
        "read/ex01/default/longform/ex01_default_longform_00001.wav": 3.0,
    }
    for rel, sec in files.items():
        tone(audio / rel, sec, 48000)
    tone(audio / "conversational/ex01-ex02/default/ex01-ex02_default_008.wav", 3.0, 48000, channels=2)
    (root / "read_transcriptions.txt").write_text(
        "ex01_happy_00001\tWe *won* the game!\n"
        "ex01_default_emphasis_00002\tThe *blue* one, not the red one.\n"
        "ex01_sad_00003\tShe left this morning.\n"
        "ex02_whisper_00001\tDon't tell anyone.\n"
        "ex02_laughing_00004\t<laugh> That was *so* funny. | <laugh>\n"
        + ("ex01_whisper_00005\tKeep it down.\nex01_laughing_00006\t<laugh> You did not!\n" if varied else ""))
    splits = root / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("# train split\nex01_happy_00001\nex01_default_emphasis_00002\n"
                                      "ex01_default_longform_00001\t(1.0s,)\nex01-ex02_default_008\t(2.0s,)\n"
                                      + ("ex01_whisper_00005\nex01_laughing_00006\n" if varied else ""))
    (splits / "dev.txt").write_text("# dev split\nex01_sad_00003\nex01_default_longform_00001\t(,1.0s)\n")
    (splits / "test.txt").write_text("# test split\nex02_whisper_00001\nex02_laughing_00004\n"
                                     "ex01-ex02_default_008\t(,2.0s)\n")
    return root


def test_no_tag_reaches_text_and_the_tagged_original_is_kept(tmp_path):
    """Non-lexical tags (<laugh>, [LAUGHTER], | pauses, *emphasis*) would leak the label into the text."""
    iemocap.prepare(make_iemocap(tmp_path / "iemocap"), tmp_path / "iem")
    msp_podcast.prepare(make_msp(tmp_path / "msp"), tmp_path / "msp_data")
    expresso.prepare(make_expresso(tmp_path / "expresso"), tmp_path / "exp_data", missing_transcript="asr")
    dirs = [d for root in ("iem", "msp_data", "exp_data") for d in (tmp_path / root).iterdir() if d.is_dir()]
    assert dirs
    for d in dirs:
        for utt, text in datadir.read_kv(d / "text").items():
            assert not any(c in text for c in "<>[]|*"), (d, utt, text)
    iem = {k: v for d in (tmp_path / "iem").iterdir() for k, v in datadir.read_kv(d / "text_tagged").items()}
    clean = {k: v for d in (tmp_path / "iem").iterdir() for k, v in datadir.read_kv(d / "text").items()}
    utt = next(k for k in iem if k.endswith("F002"))
    assert iem[utt] == "Stop [BREATHING] it." and clean[utt] == "Stop it."
    laughing = datadir.read_kv(tmp_path / "exp_data" / "test" / "text")
    assert laughing["ex02_laughing_00004"] == "That was so funny."
    assert datadir.read_kv(tmp_path / "exp_data" / "test" / "text_tagged")["ex02_laughing_00004"].startswith("<laugh>")


# -- recipe runner ---------------------------------------------------------------------------------


def recipe_copy(tmp_path: Path, name: str) -> Path:
    recipe = tmp_path / "egs" / name / "palign1"
    run([str(TEMPLATE / "setup.sh"), str(recipe)])
    src = ROOT / "egs" / name / "palign1"
    shutil.copy(src / "run.sh", recipe / "run.sh")
    shutil.copytree(src / "local", recipe / "local", dirs_exist_ok=True)
    shutil.copytree(src / "conf", recipe / "conf", dirs_exist_ok=True)
    return recipe


def stage1_error(recipe: Path, var: str, value: str) -> str:
    """Stage 1 with the corpus root ``var=value`` must fail; returns what it said."""
    proc = run(["./run.sh", "--stop_stage", "1"], cwd=recipe, env={var: value}, check=False)
    assert proc.returncode != 0
    return proc.stderr


def emo_counts(d: Path):
    counts = {}
    for label in datadir.read_kv(d / "utt2emo").values():
        counts[label] = counts.get(label, 0) + 1
    return counts


# -- IEMOCAP ---------------------------------------------------------------------------------------


def test_iemocap_recipe_stages_1_2(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP_full_release")
    recipe = recipe_copy(tmp_path, "iemocap")
    proc = run(["./run.sh", "--test_session", "3", "--stop_stage", "2"], cwd=recipe, env={"IEMOCAP": str(root)})
    log = proc.stdout + proc.stderr
    assert "label xxx=2" in log and "label fru=2" in log  # dropped labels are counted per session
    test = recipe / "data" / "test_s3"
    assert emo_counts(test) == {"neu": 2, "hap": 4, "ang": 2, "sad": 2}  # hap + exc merged
    spk = datadir.read_kv(test / "utt2spk")
    assert spk["Ses03M-Ses03F_impro01_M000"] == "Ses03M"  # the letter after the last underscore
    assert spk["Ses03F-Ses03M_script02_1_F002"] == "Ses03F"
    assert datadir.read_kv(test / "text")["Ses03M-Ses03F_impro01_M002"] == "I miss her."
    train, valid = recipe / "data" / "train_s3", recipe / "data" / "valid_s3"
    n_train, n_valid = (len(datadir.read_kv(d / "utt2spk")) for d in (train, valid))
    assert n_train + n_valid == 4 * 10 and n_valid == 5  # one of the 8 training dialogs
    assert not {u.split("-")[1][:5] for u in datadir.read_kv(train / "utt2spk")} & {"Ses03"}
    assert datadir.validate(recipe / "dump" / "raw" / "test_s3")["utterances"] == 10


def test_iemocap_espnet_split(tmp_path):
    """ESPnet's IEMOCAP split, to compare with its recipe: train Ses01-03 + Ses04F, valid Ses04M, test Ses05."""
    iemocap.prepare(make_iemocap(tmp_path / "IEMOCAP_full_release"), tmp_path / "data", split="espnet")
    spks = {name: set(datadir.read_kv(tmp_path / "data" / name / "utt2spk").values())
            for name in ("train", "valid", "test")}
    assert spks == {"train": {"Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M", "Ses04F"},
                    "valid": {"Ses04M"}, "test": {"Ses05F", "Ses05M"}}
    with pytest.raises(ValueError, match="--test_session must be 5"):
        iemocap.prepare(tmp_path / "IEMOCAP_full_release", tmp_path / "d2", test_session=3, split="espnet")


def test_iemocap_wrong_root_says_what_is_expected(tmp_path):
    recipe = recipe_copy(tmp_path, "iemocap")
    (tmp_path / "empty").mkdir()
    assert "does not look like IEMOCAP_full_release" in stage1_error(recipe, "IEMOCAP", str(tmp_path / "empty"))
    assert "IEMOCAP is not set" in stage1_error(recipe, "IEMOCAP", "")
    assert "does not exist" in stage1_error(recipe, "IEMOCAP", str(tmp_path / "nope"))


# -- MSP-Podcast -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["labels_consensus.csv", "labels_concensus.csv"])
def test_msp_podcast_recipe_stages_1_2(tmp_path, spelling):
    root = make_msp(tmp_path / "MSP-PODCAST", spelling)
    recipe = recipe_copy(tmp_path, "msp_podcast")
    proc = run(["./run.sh", "--stop_stage", "2"], cwd=recipe, env={"MSP_PODCAST": str(root)})
    log = proc.stdout + proc.stderr
    assert "class O=1" in log and "class X=1" in log
    assert "1 utterance(s) have no transcript and are dropped" in log
    data = recipe / "data"
    assert emo_counts(data / "train") == {"H": 1, "N": 1, "S": 1}
    assert emo_counts(data / "valid") == {"A": 1} and emo_counts(data / "test1") == {"S": 1}
    assert emo_counts(data / "test2") == {"U": 1}
    spk = datadir.read_kv(data / "train" / "utt2spk")
    unknown = [s for s in spk.values() if s.startswith("unk-")]
    assert len(unknown) == len(set(unknown)) == 2  # one speaker id per unknown-speaker utterance
    assert spk["spk00127-MSP-PODCAST_0001_0001"] == "spk00127"
    assert set(datadir.read_kv(data / "test1" / "utt2spk").values()).isdisjoint(spk.values())
    assert datadir.read_kv(data / "train" / "utt2gender")["spk00127-MSP-PODCAST_0001_0001"] == "Female"
    assert datadir.read_kv(data / "train" / "text")["spk00127-MSP-PODCAST_0001_0001"] == "podcast sentence 0"
    assert datadir.validate(recipe / "dump" / "raw" / "test2")["utterances"] == 1


def test_msp_podcast_wrong_root(tmp_path):
    recipe = recipe_copy(tmp_path, "msp_podcast")
    (tmp_path / "x").mkdir()
    assert "labels_consensus.csv (or labels_concensus.csv)" in stage1_error(recipe, "MSP_PODCAST", str(tmp_path / "x"))


# -- Expresso --------------------------------------------------------------------------------------


def test_expresso_split_file_quirks(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("# header\nex01_happy_00357\nex01-ex02_default_008\t(,60.0s)\n"
                 "ex01_default_longform_00001\t(16.49s,32.98s)\nex04_narration_longform_00001\t(13.87s,)\n")
    assert expresso.read_split_file(f) == [
        ("ex01_happy_00357", (None, None)), ("ex01-ex02_default_008", (None, 60.0)),
        ("ex01_default_longform_00001", (16.49, 32.98)), ("ex04_narration_longform_00001", (13.87, None))]
    f.write_text("# header\nex01_x\t[1,2]\n")
    with pytest.raises(Exception, match=r"s.txt:2: expected"):
        expresso.read_split_file(f)
    assert expresso.parse_id("ex03_default_emphasis_00010") == ("read", [("ex03", "default", 0)])
    assert expresso.parse_id("ex01-ex02_happy-sad_001") == (
        "conversational", [("ex01", "happy", 1), ("ex02", "sad", 2)])


def test_expresso_recipe_stages_1_2(tmp_path):
    root = make_expresso(tmp_path / "expresso")
    recipe = recipe_copy(tmp_path, "expresso")
    proc = run(["./run.sh", "--stop_stage", "2"], cwd=recipe, env={"EXPRESSO": str(root)})
    log = proc.stdout + proc.stderr
    assert "conversational (use --conversational true)=1" in log
    data = recipe / "data"
    assert emo_counts(data / "train") == {"happy": 1, "default": 1}  # longform segment has no transcript
    assert emo_counts(data / "valid") == {"sad": 1}
    assert emo_counts(data / "test") == {"whisper": 1, "laughing": 1}
    text = datadir.read_kv(data / "train" / "text")
    assert text["ex01_happy_00001"] == "We won the game!"
    assert datadir.read_kv(data / "train" / "text_emphasis")["ex01_happy_00001"] == "We *won* the game!"
    assert datadir.read_kv(data / "train" / "utt2spk")["ex01_default_emphasis_00002"] == "ex01"
    for split in ("train", "valid", "test"):
        dump = recipe / "dump" / "raw" / split
        datadir.validate(dump)
        for path in datadir.read_kv(dump / "wav.scp").values():
            info = soundfile.info(path)
            assert info.samplerate == 16000 and info.channels == 1 and abs(info.duration - 0.6) < 0.01


PASSAGE = ["The old lighthouse stood alone on the rocky coast.", "Every night its keeper climbed the stairs.",
           "He lit the lamp and watched the ships go by.", "One winter evening a storm came from the north.",
           "The waves rose higher than the keeper had ever seen.", "Still the light kept turning through the dark.",
           "By morning the sea was calm again.", "A small boat came into the harbour safely.",
           "The sailors thanked the keeper for his light.", "He smiled and went to sleep at last."]


def spoken(path: Path, sentences, fs: int = 48000, pause_s: float = 0.7, channels: int = 1, silent_channel=None):
    """Sentences spoken by espeak-ng with pauses between them (a longform passage or a dialogue side)."""
    from espnet_ext.audio import resample
    from espnet_ext.synth.espeak import Espeak

    tts, parts = Espeak(), []
    for text in sentences:
        parts += [resample(tts.synth(text, rate=170), tts.sample_rate, fs), np.zeros(int(pause_s * fs), np.float32)]
    x = 0.5 * np.concatenate(parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    if channels == 2:  # a dialogue: the other side is silent while this one speaks
        x = np.stack([x, np.zeros_like(x)] if silent_channel == 2 else [np.zeros_like(x), x], axis=1)
    soundfile.write(str(path), x, fs)
    return len(x) / fs


def test_expresso_longform_narration_and_conversations_are_cut_into_pieces(tmp_path):
    """Long recordings become pieces of <= 15 s at pauses inside their split range, each with its words:
    read passages from the release's passage transcript (aligned by Whisper word times), conversations from
    Whisper; narration (longform only) is in every split."""
    root = make_expresso(tmp_path / "expresso")
    audio = root / "audio_48khz"
    dur = spoken(audio / "read/ex02/narration/longform/ex02_narration_longform_00001.wav", PASSAGE)
    spoken(audio / "read/ex01/default/longform/ex01_default_longform_00001.wav", PASSAGE[:6])
    spoken(audio / "conversational/ex01-ex02/default/ex01-ex02_default_008.wav", PASSAGE[6:9], channels=2)
    with open(root / "read_transcriptions.txt", "a") as f:
        f.write(f"ex02_narration_longform_00001\t{' '.join(PASSAGE).replace('stairs', '<breath> stairs')}\n")
        f.write(f"ex01_default_longform_00001\t{' '.join(PASSAGE[:6])}\n")
    cut = round(dur * 0.55, 1)
    ranges = {"train": (None, cut), "valid": (cut, round(dur * 0.8, 1)), "test": (round(dur * 0.8, 1), None)}
    for name, split in (("train", "train"), ("dev", "valid"), ("test", "test")):
        a, b = ranges[split]
        with open(root / "splits" / f"{name}.txt", "a") as f:
            f.write(f"ex02_narration_longform_00001\t({'' if a is None else f'{a}s'},{'' if b is None else f'{b}s'})\n")
    expresso.prepare(root, tmp_path / "data")  # the defaults: read passages cut and aligned, no dialogues
    assert not [u for u in datadir.read_kv(tmp_path / "data" / "train" / "utt2spk") if "ex01-ex02" in u]
    passage_words = set(" ".join(PASSAGE).lower().replace(".", "").split())
    for split in ("train", "valid", "test"):
        d = tmp_path / "data" / split
        datadir.validate(d)
        emo, text = datadir.read_kv(d / "utt2emo"), datadir.read_kv(d / "text")
        seg = {k: v.split() for k, v in datadir.read_kv(d / "segments").items()}
        narration = [u for u in emo if emo[u] == "narration"]
        assert narration, split  # narration exists only as longform: it must be there
        lo, hi = ranges[split]
        for u in narration:
            start, end = float(seg[u][1]), float(seg[u][2])
            assert 0 < end - start <= 15.0 and (lo or 0) - 1e-6 <= start and end <= (hi or dur) + 1e-6, (u, seg[u])
            words = text[u].lower().replace(".", "").split()
            assert words and set(words) <= passage_words, (u, text[u])  # the passage's words, no tags
        if split == "train":
            got = " ".join(text[u] for u in sorted(narration, key=lambda u: float(seg[u][1])))
            assert got.split()[0] == "The" and "<breath>" not in got and len(got.split()) >= 15
    expresso.prepare(root, tmp_path / "data", conversational=True, missing_transcript="asr")
    train = tmp_path / "data" / "train"
    source, spk, chan = (datadir.read_kv(train / f) for f in ("utt2textsource", "utt2spk", "utt2channel"))
    seg = {k: v.split() for k, v in datadir.read_kv(train / "segments").items()}
    longform = [u for u in seg if u.startswith("ex01_default_longform_00001_")]
    assert longform and all(source[u] == "reference" and float(seg[u][1]) >= 1.0 for u in longform)
    conv = [u for u in seg if "ex01-ex02_default_008" in u]
    assert conv and all(source[u] == "asr" and float(seg[u][1]) >= 2.0 for u in conv)
    assert {(spk[u], chan[u]) for u in conv} <= {("ex01", "0"), ("ex02", "1")}
    assert source["ex01_happy_00001"] == "reference"
    assert datadir.read_kv(train / "text")["ex01_happy_00001"] == "We won the game!"


def test_cut_at_pauses_packs_regions_up_to_15_s():
    from espnet_ext.corpora.longform import cut_at_pauses, piece_transcripts

    active = np.zeros(4000, dtype=bool)  # 40 s: speech 0-6, 7-12, 13-19, 19.1-35 (too long: equal parts)
    for a, b in ((0, 6), (7, 12), (13, 19), (19.1, 35)):
        active[int(a * 100):int(b * 100)] = True
    pieces = cut_at_pauses(active)  # 19.0-19.1 is no pause (< 0.2 s): 13-35 is one region, cut in two
    assert pieces == [(0.0, 12.1), (12.9, 24.0), (24.0, 35.1)]
    asr = "then a cat sat on the mat and the dog came in quietly".split()  # "sat" heard as "sad" below
    times = [0.5, 1, 2, 3, 4, 5, 6, 13.5, 14, 15, 16, 17, 18]
    words = [(w if w != "sat" else "sad", t, t + 0.3) for w, t in zip(asr, times)]
    passage = "A cat sat on the mat, and the dog came in quietly. The end."
    assert piece_transcripts(words, pieces, passage) == ["A cat sat on the mat,", "and the dog came in quietly.", ""]


# -- combined recipe -------------------------------------------------------------------------------


def test_multi_emo_recipe_shared_label_space(tmp_path):
    env = {"IEMOCAP": str(make_iemocap(tmp_path / "iemocap")), "MSP_PODCAST": str(make_msp(tmp_path / "msp")),
           "EXPRESSO": str(make_expresso(tmp_path / "expresso"))}
    recipe = recipe_copy(tmp_path, "multi_emo")
    run(["./run.sh", "--stop_stage", "2"], cwd=recipe, env=env)
    data = recipe / "data"
    train = emo_counts(data / "train")
    # IEMOCAP neu/hap/ang/sad + MSP N/H/S + Expresso default/happy share names.
    n_iemocap_neu = len([u for u, e in datadir.read_kv(data / "iemocap" / "train" / "utt2origemo").items() if e == "neu"])
    assert train["neutral"] == n_iemocap_neu + 1 + 1  # + MSP N + Expresso default
    assert set(train) <= {"neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted",
                          "contemptuous", "confused", "enunciated", "laughing", "whisper", "narration"}
    orig = datadir.read_kv(data / "train" / "utt2origemo")
    emo = datadir.read_kv(data / "train" / "utt2emo")
    assert {(orig[u], emo[u]) for u in emo} >= {("N", "neutral"), ("default", "neutral"), ("hap", "happy"),
                                                 ("H", "happy"), ("happy", "happy")}
    assert emo_counts(data / "expresso_test") == {"whisper": 1, "laughing": 1}
    assert emo_counts(data / "msp_podcast_test1") == {"sad": 1}
    assert emo_counts(data / "iemocap_test") == {"neutral": 2, "happy": 4, "angry": 2, "sad": 2}
    for d in ("train", "valid", "iemocap_test", "msp_podcast_test1", "expresso_test"):
        datadir.validate(recipe / "dump" / "raw" / d)


# -- smoke runs: every stage of a corpus recipe on its fake release -----------------------------------

# Every corpus recipe's smoke run, one test each (each is mostly one busy process: test/run.sh's two
# pytest-xdist workers run two of them, or one beside other tests). Their stages 1-2 are tested above in
# detail; stages 3-12 are palign.sh's, the same code for every corpus. The baselines (stages 9-11) run in
# multi_emo's smoke run, on all three corpora's labels and test sets, and in iemocap's (its fold's expdir);
# msp_podcast's and expresso's train, decode and score ParaAlign on their own data (--baselines "").
SMOKE_CORPORA = ("multi_emo", "msp_podcast", "iemocap", "expresso")  # the longest first
SMOKE_WITH_BASELINES = ("multi_emo", "iemocap")


def smoke_run(tmp_path: Path, corpus: str, *args: str):
    """One recipe's ``./run.sh --llm tiny`` on its own fake release(s) under tmp_path/corpus."""
    base = tmp_path / corpus
    env = {}
    if corpus in ("iemocap", "multi_emo"):
        env["IEMOCAP"] = str(make_iemocap(base / "IEMOCAP_full_release", varied=True))
    if corpus in ("msp_podcast", "multi_emo"):
        env["MSP_PODCAST"] = str(make_msp(base / "MSP-Podcast", varied=True))
    if corpus in ("expresso", "multi_emo"):
        env["EXPRESSO"] = str(make_expresso(base / "Expresso", varied=True))
    recipe = recipe_copy(base, corpus)
    return recipe, run(["./run.sh", "--llm", "tiny", *args], cwd=recipe, env=env, check=False)


@pytest.mark.parametrize("corpus", SMOKE_CORPORA)
def test_corpus_recipe_smoke_run_reaches_results_and_touches_no_committed_file(tmp_path, corpus):
    """run.sh --llm tiny of a corpus recipe: stages 1-12 (the classifier cascade included, where the
    baselines run) on the CPU with the shared conf/smoke/ configs; everything it writes is under exp/smoke,
    its report there too."""
    baselines = corpus in SMOKE_WITH_BASELINES
    recipe, proc = smoke_run(tmp_path, corpus, *(() if baselines else ("--baselines", "")))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{corpus} smoke run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    exp = recipe / "exp" / "smoke" / ("s5" if corpus == "iemocap" else "")
    assert "Stage 8: scoring" in log and "Stage 12: exp/smoke" in log and "Finished stages 1-100." in log
    results = (exp / "RESULTS.md").read_text()
    assert "| ParaAlign (train) |" in results
    if baselines:
        assert "Stage 11: cascades with an emotion classifier" in log
        assert "| Semantic-only alignment (train) |" in results
        assert "| Cascade: emotion classifier (ESPnet cls) + oracle transcript |" in results
        assert "| Reference: true emotion, no words" in results and "| Topline: transcript + true emotion" in results
    else:  # no baseline asked for: stages 9-11 do nothing
        assert not any(f"Stage {s}:" in log for s in (9, 10, 11)) and not (exp / "baselines").exists()
        assert "| Topline" not in results and "Semantic-only" not in results
    assert sorted(p.name for p in (recipe / "exp").iterdir()) == ["smoke"]  # nothing beside it
    assert not (recipe / "RESULTS.md").exists() and not (recipe / "images").exists()
    labels = yaml.safe_load((exp / "palign_train" / "config.yaml").read_text())["aux_conf"]["labels"]
    seen = {label for split in ("train*", "valid*") for label in
            datadir.read_kv(next((recipe / "dump" / "raw").glob(split)) / "utt2emo").values()}
    assert labels == sorted(seen)  # from_data: train and valid labels, resolved into config.yaml
