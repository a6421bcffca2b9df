"""Bad input and faults: each case builds its bad input on the fly and asserts the exact outcome, an error
that names the file (line, utterance) or a correct result. Cases that need a trained model live beside
their fixtures (test_palign_model.py: model files with pickled code, checkpoint.pth, wrong keys)."""
import shutil

import pytest

from conftest import UTILS, make_data_dir, run
from espnet_ext import datadir
from espnet_ext.bin import palign_inference


def _infer(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        palign_inference.main(list(argv))
    assert e.value.code not in (0, None)
    return capsys.readouterr().err


def test_inference_missing_model_dir(tmp_path, capsys):
    err = _infer(capsys, "--model_dir", str(tmp_path / "nope"), "--wav", "x.wav")
    assert f"--model_dir {tmp_path / 'nope'}: no such directory" in err


def test_inference_model_dir_without_config(tmp_path, capsys):
    err = _infer(capsys, "--model_dir", str(tmp_path), "--wav", "x.wav")
    assert "no config.yaml" in err and str(tmp_path) in err


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "exp"
    d.mkdir()
    (d / "config.yaml").write_text("{}\n")
    return d


def test_inference_missing_wav_reported_before_the_model_loads(model_dir, tmp_path, capsys):
    err = _infer(capsys, "--model_dir", str(model_dir), "--wav", str(tmp_path / "missing.wav"))
    assert f"--wav {tmp_path / 'missing.wav'}: no such file" in err


def test_inference_corrupt_wav(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    err = _infer(capsys, "--model_dir", str(model_dir), "--wav", str(bad))
    assert f"--wav {bad}: cannot read audio" in err


def test_inference_data_dir_needs_output_and_wav_scp(model_dir, tmp_path, capsys):
    assert "--output is required" in _infer(capsys, "--model_dir", str(model_dir), "--data_dir", str(tmp_path))
    err = _infer(capsys, "--model_dir", str(model_dir), "--data_dir", str(tmp_path), "--output", "o")
    assert f"--data_dir {tmp_path}: no wav.scp" in err
    err = _infer(capsys, "--model_dir", str(model_dir), "--wav", "x.wav", "--emotion_alone_output", "o")
    assert "--emotion_alone_output works with --data_dir only" in err  # not silently ignored


def test_inference_missing_model_file_and_speaker_means(model_dir, tmp_path, capsys):
    (tmp_path / "a.wav").write_bytes(b"")
    err = _infer(capsys, "--model_dir", str(model_dir), "--model_file", str(model_dir / "9epoch.pth"),
                 "--data_dir", str(tmp_path), "--output", "o")
    assert "9epoch.pth: no such file" in err
    (tmp_path / "wav.scp").write_text("")
    err = _infer(capsys, "--model_dir", str(model_dir), "--data_dir", str(tmp_path), "--output", "o",
                 "--spk_mean_scp", str(tmp_path / "spk_mean.scp"))
    assert "spk_mean.scp: no such file" in err


# -- data dirs -------------------------------------------------------------------------------------

def test_non_utf8_text_names_file_line_and_utterance(data_dir):
    lines = (data_dir / "text").read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"hello", b"h\xe9llo")
    (data_dir / "text").write_bytes(b"".join(lines))
    with pytest.raises(datadir.DataDirError, match=r"text:3: utterance 'spk1_utt2': not UTF-8 text \(byte 0xe9"):
        datadir.validate(data_dir)


def test_blank_transcript_is_rejected(data_dir):
    text = (data_dir / "text").read_text().splitlines()
    text[1] = text[1].split()[0] + "    "
    (data_dir / "text").write_text("\n".join(text) + "\n")
    with pytest.raises(datadir.DataDirError, match=r"text:2: utterance 'spk1_utt1' has an empty value"):
        datadir.validate(data_dir)


@pytest.mark.parametrize("bad", ["../../x", ".hidden"])
def test_ids_that_would_name_files_outside_the_dir(tmp_path, bad):
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA"), ("spkA_u1", "spkA")])
    for name in ("wav.scp", "text", "utt2spk", "utt2emo"):
        lines = (d / name).read_text().replace("spkA_u1", bad).splitlines()
        (d / name).write_text("\n".join(sorted(lines)) + "\n")
    (d / "spk2utt").write_text(f"spkA {' '.join(sorted(['spkA_u0', bad]))}\n")
    with pytest.raises(datadir.DataDirError, match=f"id '{bad}' contains '/'.* ids name files"):
        datadir.validate(d)


def test_speaker_id_with_a_slash(tmp_path):
    d = make_data_dir(tmp_path / "d", [("u0", "a/b"), ("u1", "a/b")])
    with pytest.raises(datadir.DataDirError, match=r"utt2spk:1: speaker of 'u0': id 'a/b'"):
        datadir.validate(d)


def test_fix_refuses_to_empty_a_dir_and_keeps_a_backup(data_dir):
    before = {p.name: p.read_text() for p in data_dir.iterdir() if p.is_file()}
    (data_dir / "utt2emo").write_text("")
    proc = run([str(UTILS / "fix_data_dir.sh"), str(data_dir)], check=False)
    assert proc.returncode != 0 and "no utterance is in every file (utt2emo empty); nothing was changed" in proc.stderr
    assert (data_dir / "text").read_text() == before["text"]  # untouched
    (data_dir / "utt2emo").write_text(before["utt2emo"].split("\n", 1)[1])  # one utterance fewer
    datadir.fix(data_dir)
    assert (data_dir / ".backup" / "text").read_text() == before["text"]
    assert len((data_dir / "text").read_text().splitlines()) == len(before["text"].splitlines()) - 1


def test_validate_says_piped_entries_were_not_checked(data_dir):
    lines = (data_dir / "wav.scp").read_text().splitlines()
    utt, path = lines[0].split(maxsplit=1)
    lines[0] = f"{utt} cat {path} |"
    (data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    out = run([str(UTILS / "validate_data_dir.sh"), str(data_dir)], cwd=UTILS.parent).stdout
    assert "OK except unchecked commands" in out and "1 piped wav.scp entries" in out


def test_stage2_refuses_an_id_that_would_write_outside_the_audio_dir(tmp_path):
    from espnet_ext.bin import format_audio

    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    path = (d / "wav.scp").read_text().split()[1]
    (d / "wav.scp").write_text(f"../../escaped {path}\n")
    with pytest.raises(datadir.DataDirError, match=r"wav.scp:1: id '../../escaped'"):
        format_audio.main(["--in_dir", str(d), "--out_dir", str(tmp_path / "out"),
                           "--audio_dir", str(tmp_path / "out" / "audio")])
    assert not (tmp_path / "escaped.wav").exists() and not list(tmp_path.glob("**/escaped.wav"))


# -- audio (stage 2) -------------------------------------------------------------------------------


def _format(d, out, *extra):
    from espnet_ext.bin import format_audio

    return format_audio.main(["--in_dir", str(d), "--out_dir", str(out), "--audio_dir", str(out / "audio"),
                              *extra])


def _one_utt_dir(tmp_path, samples, subtype="FLOAT"):
    import numpy as np
    import soundfile

    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    wav = d / "wav" / "spkA_u0.wav"
    soundfile.write(str(wav), np.asarray(samples, dtype=np.float32), 16000, subtype=subtype)
    return d, wav


def test_stage2_truncated_wav_is_named(tmp_path):
    d, wav = _one_utt_dir(tmp_path, [0.1] * 16000, subtype="PCM_16")
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*truncated: the header promises 16000 samples"):
        _format(d, tmp_path / "out")


def test_stage2_nan_samples_are_rejected(tmp_path):
    d, _ = _one_utt_dir(tmp_path, [0.1] * 8000 + [float("nan")] + [0.1] * 7999)
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*1 NaN/Inf sample\(s\), first at sample 8000"):
        _format(d, tmp_path / "out")


def test_stage2_clipping_is_counted_in_a_warning(tmp_path, caplog):
    import soundfile

    d, _ = _one_utt_dir(tmp_path, [1.5] * 300 + [0.2] * 15700)
    assert _format(d, tmp_path / "out") == 0
    assert "utterance 'spkA_u0'" in caplog.text and "300 sample(s) beyond full scale, clipped" in caplog.text
    x, _ = soundfile.read(tmp_path / "out" / "audio" / "spkA_u0.wav")
    assert abs(x.max() - 1.0) < 1e-3 and len(x) == 16000


def test_stage2_rewrites_an_output_whose_source_changed(tmp_path):
    import os

    import numpy as np
    import soundfile

    d, wav = _one_utt_dir(tmp_path, [0.1] * 16000, subtype="PCM_16")
    out = tmp_path / "out"
    _format(d, out)
    soundfile.write(str(wav), np.full(8000, -0.2, dtype=np.float32), 16000, subtype="PCM_16")  # fixed source
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    _format(d, out)
    x, _ = soundfile.read(out / "audio" / "spkA_u0.wav")
    assert len(x) == 8000 and x.mean() < 0
    assert datadir.read_kv(out / "utt2num_samples") == {"spkA_u0": "8000"}


def test_stage2_a_set_left_empty_by_min_dur_stops_the_recipe(tmp_path):
    from conftest import ROOT

    recipe = tmp_path / "egs" / "x" / "palign1"
    run([str(ROOT / "egs" / "TEMPLATE" / "palign1" / "setup.sh"), str(recipe)])
    make_data_dir(recipe / "data" / "train", [("spkA_u0", "spkA"), ("spkA_u1", "spkA")])
    proc = run(["./palign.sh", "--stage", "2", "--stop_stage", "2", "--train_set", "train", "--valid_set", "train",
                "--test_sets", "", "--min_dur", "5"], cwd=recipe, check=False)
    assert proc.returncode != 0
    assert "train: every utterance is outside 5-30.0 s" in proc.stdout + proc.stderr


# -- teacher generation (stage 4) resume ----------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_run(tiny_llm, small_corpus, tmp_path_factory):
    """An uninterrupted two-shard stage 4 run of the tiny LLM: the reference bytes."""
    import yaml

    from conftest import ROOT
    from espnet_ext.bin import teacher_generate

    tmp = tmp_path_factory.mktemp("teacher")
    config = tmp / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": str(tiny_llm)},
                                      "prompt_conf": str(ROOT / "conf" / "prompts" / "emotion.yaml"),
                                      "batch_size": 4, "max_new_tokens": 5}))
    common = ["--config", str(config), "--out", str(tmp / "t")]
    teacher_generate.main(["prepare", *common, "--data_dirs", str(small_corpus / "train")])
    for shard in (1, 2):
        teacher_generate.main(["generate", *common, "--shard", str(shard), "--num_shards", "2"])
    return config, tmp / "t"


def _rerun_shard(teacher_run, tmp_path, damage):
    import shutil

    from espnet_ext.bin import teacher_generate

    config, ref = teacher_run
    out = tmp_path / "t"
    shutil.copytree(ref, out)
    damage(out)
    assert teacher_generate.main(["generate", "--config", str(config), "--out", str(out),
                                  "--shard", "1", "--num_shards", "2"]) == 0
    return ref, out


def test_teacher_resume_after_a_record_without_its_newline(teacher_run, tmp_path):
    def cut_newline(out):
        path = out / "replies.1.jsonl"
        lines = path.read_bytes().splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:3])[:-1])  # three whole records, the last newline missing

    ref, out = _rerun_shard(teacher_run, tmp_path, cut_newline)
    assert (out / "replies.1.jsonl").read_bytes() == (ref / "replies.1.jsonl").read_bytes()


def test_teacher_shard_tolerates_a_torn_line_in_a_shard_still_writing(teacher_run, tmp_path):
    def tear_other_and_cut_own(out):
        other = out / "replies.2.jsonl"
        lines = other.read_bytes().splitlines(keepends=True)
        other.write_bytes(b"".join(lines[:2]) + lines[2][:7])  # shard 2 mid-write
        own = out / "replies.1.jsonl"
        mine = own.read_bytes().splitlines(keepends=True)
        own.write_bytes(b"".join(mine[:1]) + mine[1][:9])  # shard 1 killed mid-line

    ref, out = _rerun_shard(teacher_run, tmp_path, tear_other_and_cut_own)
    assert (out / "replies.1.jsonl").read_bytes() == (ref / "replies.1.jsonl").read_bytes()
    assert (out / "replies.2.jsonl").read_bytes().endswith(b'{"id": ')  # another job's file is not touched


def test_teacher_merge_names_a_bad_line(teacher_run, tmp_path):
    import shutil

    from espnet_ext import teacher

    _, ref = teacher_run
    out = tmp_path / "t"
    shutil.copytree(ref, out)
    lines = (out / "replies.2.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "not json\n"
    (out / "replies.2.jsonl").write_text("".join(lines))
    with pytest.raises(ValueError, match=r"replies.2.jsonl:2: not JSON"):
        teacher.read_jsonl(out / "replies.2.jsonl", torn_tail_ok=True)


# -- corpus preparation ----------------------------------------------------------------------------


def _prepare(capsys, *argv):
    from espnet_ext.bin import prepare_corpus

    rc = prepare_corpus.main(list(argv))
    return rc, capsys.readouterr()


def test_iemocap_summary_line_with_spaces_for_tabs(tmp_path, capsys):
    from test_corpora import make_iemocap

    def count(out):
        return sum(len(datadir.read_kv(f)) for f in out.glob("*/utt2emo"))

    root = make_iemocap(tmp_path / "iemocap")
    assert _prepare(capsys, "iemocap", "--root", str(root), "--out", str(tmp_path / "clean"))[0] == 0
    evals = sorted((root / "Session1" / "dialog" / "EmoEvaluation").glob("*.txt"))[0]
    lines = evals.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("["))
    lines[k] = lines[k].replace("\t", "    ")
    evals.write_text("\n".join(lines) + "\n")
    rc, _ = _prepare(capsys, "iemocap", "--root", str(root), "--out", str(tmp_path / "data"))
    assert rc == 0 and count(tmp_path / "data") == count(tmp_path / "clean")  # spaces for tabs: still kept
    lines[k] = lines[k].replace("[", "[ ", 1).replace(" - ", "-")
    evals.write_text("\n".join(lines) + "\n")
    rc, out = _prepare(capsys, "iemocap", "--root", str(root), "--out", str(tmp_path / "data2"))
    assert rc == 1 and f"{evals}:{k + 1}: a summary line that does not parse" in out.err


def test_msp_csv_row_missing_a_field(tmp_path, capsys):
    from test_corpora import make_msp

    root = make_msp(tmp_path / "msp")
    csv = root / "Labels" / "labels_consensus.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # the last field (Split_Set) is gone
    csv.write_text("\n".join(lines) + "\n")
    rc, out = _prepare(capsys, "msp_podcast", "--root", str(root), "--out", str(tmp_path / "data"))
    assert rc == 1 and f"{csv}:3: missing field(s) ['Split_Set']" in out.err


def test_msp_classes_unknown_code_and_comma_list(tmp_path, capsys):
    from test_corpora import make_msp

    root = make_msp(tmp_path / "msp")
    rc, out = _prepare(capsys, "msp_podcast", "--root", str(root), "--out", str(tmp_path / "d1"), "--classes", "A", "Q")
    assert rc == 1 and "--classes: unknown class code(s) ['Q']" in out.err
    rc, _ = _prepare(capsys, "msp_podcast", "--root", str(root), "--out", str(tmp_path / "d2"), "--classes", "A,H,S,N")
    labels = {v for f in (tmp_path / "d2").glob("*/utt2emo") for v in datadir.read_kv(f).values()}
    assert rc == 0 and labels and labels <= {"A", "H", "S", "N"}


def test_stage2_resamples_and_downmixes(tmp_path):
    import numpy as np
    import soundfile

    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    wav = d / "wav" / "spkA_u0.wav"
    t = np.arange(8000) / 8000
    tone = 0.2 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(str(wav), np.stack([tone, tone], 1), 8000)  # 1 s, 8 kHz, stereo
    assert _format(d, tmp_path / "out") == 0
    info = soundfile.info(str(tmp_path / "out" / "audio" / "spkA_u0.wav"))
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)


def test_stage2_empty_wav_names_the_utterance(tmp_path):
    d, _ = _one_utt_dir(tmp_path, [])
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*no audio samples"):
        _format(d, tmp_path / "out")


def test_stage2_failing_pipe_names_utterance_and_command(tmp_path):
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    (d / "wav.scp").write_text("spkA_u0 sh -c 'exit 3' |\n")
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*command failed \(rc=3\)"):
        _format(d, tmp_path / "out")


def test_stage2_segment_beyond_the_recording(tmp_path):
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])  # a 0.5 s recording
    (d / "segments").write_text("spkA_u0 spkA_u0 0.20 2.00\n")
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*segment 0.20-2.0 s lies beyond the audio's 0.50 s"):
        _format(d, tmp_path / "out")


def test_stage2_redoes_an_unreadable_earlier_output(tmp_path):
    import soundfile

    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    out = tmp_path / "out"
    _format(d, out)
    (out / "audio" / "spkA_u0.wav").write_bytes(b"RIFF garbage")  # e.g. a disk that filled up
    assert _format(d, out) == 0
    assert soundfile.info(str(out / "audio" / "spkA_u0.wav")).frames == 8000


def test_crlf_data_dir_reads_clean_values(data_dir):
    for name in ("text", "utt2emo"):
        (data_dir / name).write_bytes((data_dir / name).read_bytes().replace(b"\n", b"\r\n"))
    assert datadir.validate(data_dir)["utterances"] == 6
    assert all(not v.endswith("\r") for v in datadir.read_kv(data_dir / "utt2emo").values())


# -- scoring ---------------------------------------------------------------------------------------


def test_score_refuses_a_system_output_that_lost_or_gained_lines(data_dir, tmp_path):
    from espnet_ext.bin import score

    utts = list(datadir.read_kv(data_dir / "utt2emo"))
    datadir.write_kv(data_dir / "response", {u: "I am sorry to hear that." for u in utts})
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    datadir.write_kv(hyp / "text", {u: "sorry" for u in utts[1:]})  # one reply lost
    with pytest.raises(SystemExit, match=rf"hyp/text: 1 utterance\(s\) of .*response missing \(e.g. '{utts[0]}'\)"):
        score.score(data_dir, hyp, {})
    datadir.write_kv(hyp / "text", {u: "sorry" for u in utts})
    datadir.write_kv(hyp / "emotion", {**{u: "happy" for u in utts}, "zz_extra": "sad"})
    with pytest.raises(SystemExit, match=r"hyp/emotion: 0 utterance\(s\) of .*utt2emo missing, 1 not in it \(e.g. 'zz_extra'\)"):
        score.score(data_dir, hyp, {})


# -- training (stage 6) resume after kill -9 ---------------------------------------------------------

def _train_cmd(tiny_llm, corpus, out, epochs):
    import sys

    from conftest import tiny_train_args

    cmd = [sys.executable, "-m", "espnet_ext.bin.palign_train"] + tiny_train_args(tiny_llm) + [
        "--tasks", "response", "emotion", "--task_conf", "ratios={response: 0.5, emotion: 0.5}"]
    for phase, split in (("train", "train"), ("valid", "valid")):
        for name in ("response", "emotion"):
            cmd += [f"--{phase}_data_path_and_name_and_type", f"{corpus / split / name},{name},text"]
        cmd += [f"--{phase}_data_path_and_name_and_type", f"{corpus / split / 'wav.scp'},speech,sound",
                f"--{phase}_shape_file", str(corpus / split / "speech_shape")]
    return cmd + ["--output_dir", str(out), "--max_epoch", str(epochs), "--batch_type", "unsorted",
                  "--batch_size", "2", "--optim", "adam", "--optim_conf", "lr=0.003", "--num_att_plot", "0",
                  "--num_workers", "0", "--seed", "3", "--resume", "true", "--ngpu", "0"]


def test_training_killed_mid_run_resumes_to_the_same_model(tiny_llm, small_corpus, tmp_path):
    """kill -9 during epoch 2 of 3, rerun the same command: the final model equals an uninterrupted run,
    bit for bit with one thread (the Trainer reseeds every RNG per epoch; the task sampler uses that RNG)."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    import torch

    from espnet_ext.datadir import read_kv, write_kv

    corpus = tmp_path / "data"
    for split in ("train", "valid"):
        shutil.copytree(small_corpus / split, corpus / split)
        emo = read_kv(corpus / split / "utt2emo")
        write_kv(corpus / split / "emotion", {u: e.capitalize() + "." for u, e in emo.items()})
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    reference = subprocess.Popen(_train_cmd(tiny_llm, corpus, ref, 3), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = subprocess.Popen(_train_cmd(tiny_llm, corpus, killed, 3), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "1epoch.pth").exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert (killed / "1epoch.pth").exists() and not (killed / "3epoch.pth").exists(), "the kill missed epoch 2"
    subprocess.run(_train_cmd(tiny_llm, corpus, killed, 3), env=env, check=True, capture_output=True)
    assert reference.wait(timeout=300) == 0
    a = torch.load(ref / "3epoch.pth", map_location="cpu", weights_only=True)
    b = torch.load(killed / "3epoch.pth", map_location="cpu", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


# -- more data-dir faults: each mutation of a valid dir and the exact message it must give ------------

def _drop_value(d, name, n):
    lines = (d / name).read_text().splitlines()
    lines[n] = lines[n].split()[0]
    (d / name).write_text("\n".join(lines) + "\n")


def _blank_line(d, name, n):
    lines = (d / name).read_text().splitlines()
    lines.insert(n, "")
    (d / name).write_text("\n".join(lines) + "\n")


def _wav_to(d, target):
    lines = (d / "wav.scp").read_text().splitlines()
    lines[1] = f"{lines[1].split()[0]} {target(d)}"
    (d / "wav.scp").write_text("\n".join(lines) + "\n")


def _segments(d, times):
    """Turn the dir into a segmented one over its first recording; the second segment gets ``times``."""
    rec, path = (d / "wav.scp").read_text().splitlines()[0].split()
    utts = (d / "utt2spk").read_text().split()[::2]
    (d / "wav.scp").write_text(f"rec0 {path}\n")
    (d / "segments").write_text("".join(f"{u} rec0 {times if i == 1 else '0.0 0.2'}\n" for i, u in enumerate(utts)))


DATA_DIR_FAULTS = {
    "wav.scp entry without a path": (lambda d: _drop_value(d, "wav.scp", 1), r"wav.scp:2: .*'spk1_utt1'"),
    "empty line inside utt2spk": (lambda d: _blank_line(d, "utt2spk", 2), r"utt2spk:3: empty line"),
    "wav.scp names a missing file": (lambda d: _wav_to(d, lambda d: d / "gone.wav"),
                                     r"wav.scp:2: utterance 'spk1_utt1': unreadable audio .*gone.wav"),
    "wav.scp names a directory": (lambda d: _wav_to(d, lambda d: d), r"wav.scp:2: utterance 'spk1_utt1': unreadable"),
    "wav.scp names a text file": (lambda d: _wav_to(d, lambda d: d / "text"),
                                  r"wav.scp:2: utterance 'spk1_utt1': unreadable audio .*text"),
    "segment that ends before it starts": (lambda d: _segments(d, "0.3 0.1"), r"segments:2: utterance 'spk1_utt1': bad times 0.3..0.1"),
    "segment times that are not numbers": (lambda d: _segments(d, "0.1 end"), r"segments:2: utterance 'spk1_utt1': start/end are not numbers"),
    "utt2spk deleted": (lambda d: (d / "utt2spk").unlink(), r"missing required file 'utt2spk'"),
    "emotion label missing on one line": (lambda d: _drop_value(d, "utt2emo", 4),
                                          r"utt2emo:5: utterance 'spk2_utt1' has an empty value"),
    "utterance of text missing from utt2emo": (lambda d: (d / "utt2emo").write_text(
        "".join(l + "\n" for l in (d / "utt2emo").read_text().splitlines()[:-1])),
        r"utt2emo: utterance 'spk2_utt2' \(in utt2spk\) is missing"),
}


@pytest.mark.parametrize("case", sorted(DATA_DIR_FAULTS))
def test_data_dir_fault_is_named(data_dir, case):
    mutate, message = DATA_DIR_FAULTS[case]
    mutate(data_dir)
    with pytest.raises(datadir.DataDirError, match=message):
        datadir.validate(data_dir)
    proc = run([str(UTILS / "validate_data_dir.sh"), str(data_dir)], cwd=UTILS.parent, check=False)
    assert proc.returncode != 0 and "OK" not in proc.stdout


def test_validate_a_missing_dir_and_an_empty_one(tmp_path):
    with pytest.raises(datadir.DataDirError, match=f"{tmp_path / 'nope'}: no such data directory"):
        datadir.validate(tmp_path / "nope")
    d = make_data_dir(tmp_path / "d", [("u0", "s")])
    for f in ("wav.scp", "text", "utt2spk", "utt2emo", "spk2utt"):
        (d / f).write_text("")
    proc = run([str(UTILS / "validate_data_dir.sh"), str(d)], cwd=UTILS.parent, check=False)
    assert proc.returncode != 0 and "no utterances" in proc.stderr and "OK" not in proc.stdout


# -- a full disk ------------------------------------------------------------------------------------

def _limited(limit_bytes, code):
    """Run ``code`` in a child whose files may not grow beyond ``limit_bytes`` (a full disk, as the writer sees it)."""
    import sys

    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))\n"
    return run([sys.executable, "-c", prelude + code], check=False)


def test_kv_file_on_a_full_disk_keeps_the_old_file(tmp_path):
    path = tmp_path / "text"
    path.write_text("u1 the old content\n")
    proc = _limited(4096, f"from espnet_ext.datadir import write_kv\n"
                          f"write_kv('{path}', {{f'u{{i}}': 'x' * 100 for i in range(200)}})")
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert path.read_text() == "u1 the old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["text"]  # no half-written temporary left


def test_stage2_on_a_full_disk_names_the_utterance_and_a_rerun_completes(tmp_path):
    import numpy as np
    import soundfile

    d = make_data_dir(tmp_path / "d", [(f"spkA_u{i}", "spkA") for i in range(3)])
    big = tmp_path / "long.wav"
    soundfile.write(str(big), 0.1 * np.sin(np.arange(48000) / 5.0), 16000)  # 3 s: 96 kB as 16-bit
    lines = (d / "wav.scp").read_text().splitlines()
    lines[2] = f"spkA_u2 {big}"
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = _limited(40_000, "from espnet_ext.bin import format_audio; import sys\n"
                            f"sys.exit(format_audio.main(['--in_dir', '{d}', '--out_dir', '{out}', "
                            f"'--audio_dir', '{out / 'audio'}']))")
    assert proc.returncode != 0 and "utterance 'spkA_u2'" in proc.stderr and "File too large" in proc.stderr
    assert not (out / "wav.scp").exists()  # nothing claims to be complete
    _format(d, out)
    got = datadir.read_kv(out / "wav.scp")
    assert sorted(got) == ["spkA_u0", "spkA_u1", "spkA_u2"]
    assert soundfile.info(got["spkA_u2"]).frames == 48000


# -- a second run on top of the first ---------------------------------------------------------------

def test_stage2_second_run_rewrites_nothing(tmp_path):
    d = make_data_dir(tmp_path / "d", [(f"spkA_u{i}", "spkA") for i in range(3)])
    out = tmp_path / "out"
    _format(d, out)
    wavs = sorted((out / "audio").glob("*.wav"))
    before = {p: p.stat().st_mtime_ns for p in wavs}
    scp = (out / "wav.scp").read_text()
    _format(d, out)
    assert {p: p.stat().st_mtime_ns for p in wavs} == before and (out / "wav.scp").read_text() == scp
    assert sorted((out / "audio").iterdir()) == wavs  # no temporaries, no duplicates


# -- prompts and labels ------------------------------------------------------------------------------

def test_teacher_prompt_for_an_emotion_the_prompt_file_does_not_know(data_dir):
    from espnet_ext import teacher
    from espnet_ext.palign.prompts import load_prompt_conf
    from conftest import ROOT

    lines = (data_dir / "utt2emo").read_text().splitlines()
    lines[3] = lines[3].split()[0] + " bored"
    (data_dir / "utt2emo").write_text("\n".join(lines) + "\n")
    conf = load_prompt_conf(ROOT / "conf" / "prompts" / "emotion.yaml")
    with pytest.raises(SystemExit, match=r"utterance 'spk2_utt0' \(utt2emo line 4\): label 'bored' has no entry "
                                         r"under 'labels'.*relabel_data_dir.sh"):
        list(teacher.utterance_prompts(data_dir, ["response"], conf))


def test_teacher_merge_without_a_reply_names_the_utterance(teacher_run, small_corpus, tmp_path):
    import shutil

    from espnet_ext.bin import teacher_generate

    config, ref = teacher_run
    out, data = tmp_path / "t", tmp_path / "train"
    shutil.copytree(ref, out)
    shutil.copytree(small_corpus / "train", data)
    shard = out / "replies.1.jsonl"
    shard.write_text("".join(shard.read_text().splitlines(keepends=True)[1:]))  # one reply lost
    with pytest.raises(SystemExit, match=r"no reply for utterance '.*' of .*train \(task response.*run the generate"):
        teacher_generate.main(["merge", "--config", str(config), "--out", str(out), "--data_dirs", str(data)])
    assert not (data / "response").exists() or (data / "response").read_text() == \
        (small_corpus / "train" / "response").read_text()  # nothing half-merged


# -- scoring and reports -----------------------------------------------------------------------------

def test_score_with_a_missing_reference_file(data_dir, tmp_path):
    from espnet_ext.bin import score

    hyp = tmp_path / "hyp"
    hyp.mkdir()
    (hyp / "text").write_text((data_dir / "text").read_text())
    with pytest.raises(SystemExit, match=r"score: .*data/response does not exist \(the teacher's replies"):
        score.main(["--ref_dir", str(data_dir), "--hyp_dir", str(hyp), "--output", str(tmp_path / "s.json"),
                    "--semantic", "false"])
    assert not (tmp_path / "s.json").exists()


def test_results_and_fold_average_without_scores(tmp_path):
    from espnet_ext.bin import average_folds, make_results

    with pytest.raises(SystemExit, match="no scores.json under"):
        average_folds.main([str(tmp_path), "--output", str(tmp_path / "avg.json")])
    with pytest.raises(SystemExit, match="no system.yaml with its scores.json under .*run stage 8 first"):
        make_results.main(["--expdir", str(tmp_path), "--test_sets", "test", "--output", str(tmp_path / "R.md")])
    assert not (tmp_path / "avg.json").exists() and not (tmp_path / "R.md").exists()


# -- missing pieces a user may forget ----------------------------------------------------------------

def test_llm_folder_that_does_not_exist(tmp_path):
    from espnet_ext.palign.llm import ChatTokenizer

    with pytest.raises(FileNotFoundError, match=f"LLM folder '{tmp_path / 'llm'}' does not exist"):
        ChatTokenizer(str(tmp_path / "llm"))
    with pytest.raises(FileNotFoundError, match="LLM folder 'downloads/llm/Model' does not exist"):
        ChatTokenizer("downloads/llm/Model")


def test_teacher_generate_before_prepare(tmp_path):
    from espnet_ext import teacher

    with pytest.raises(SystemExit, match=r"prompts.jsonl does not exist; run the prepare step first"):
        teacher.generate(tmp_path / "t", 1, 1, {"name_or_path": "x"}, None, 4, 4, "cpu")


@pytest.mark.parametrize("corpus", ["iemocap", "msp_podcast", "expresso"])
def test_corpus_root_that_is_missing_or_empty(tmp_path, capsys, corpus):
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "nope", tmp_path / "empty"):
        rc, out = _prepare(capsys, corpus, "--root", str(root), "--out", str(tmp_path / "data"))
        assert rc != 0 and str(root) in out.err, out.err
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("wav.scp"))


def test_expresso_transcripts_of_other_speakers_stop_with_both_sides(tmp_path):
    """A copy whose transcript file names ex05-ex08 where the splits name ex01-ex04 would lose every read
    utterance behind a count-only warning."""
    from test_corpora import make_expresso
    from espnet_ext.corpora import expresso
    from espnet_ext.corpora.common import CorpusError

    root = make_expresso(tmp_path / "expresso")
    lines = (root / "read_transcriptions.txt").read_text().replace("ex01_", "ex05_").replace("ex02_", "ex06_")
    (root / "read_transcriptions.txt").write_text(lines)
    with pytest.raises(CorpusError, match=r"train.txt: 2 of 2 files have no transcript in read_transcriptions.txt, "
                                          r"e.g. the split names 'ex01_happy_00001' where .* has 'ex05_"):
        expresso.prepare(root, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_inference_empty_and_silent_wavs(model_dir, tmp_path, capsys):
    import numpy as np
    import soundfile

    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0), 16000)
    err = _infer(capsys, "--model_dir", str(model_dir), "--wav", str(empty))
    assert f"--wav {empty}: cannot read audio" in err and "empty" in err


def test_combine_with_a_missing_source_dir(data_dir, tmp_path):
    proc = run([str(UTILS / "combine_data.sh"), str(tmp_path / "all"), str(data_dir), str(tmp_path / "nope")],
               cwd=UTILS.parent, check=False)
    assert proc.returncode != 0 and str(tmp_path / "nope") in proc.stderr
    assert not (tmp_path / "all" / "wav.scp").exists()


def test_stage2_channel_beyond_the_recording(tmp_path):
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    (d / "utt2channel").write_text("spkA_u0 2\n")  # 0-based: a mono file has no third channel
    with pytest.raises(SystemExit, match=r"utterance 'spkA_u0'.*channel"):
        _format(d, tmp_path / "out")


def test_score_without_the_system_output(data_dir, tmp_path):
    from espnet_ext.bin import score

    (tmp_path / "hyp").mkdir()
    (data_dir / "response").write_text((data_dir / "text").read_text())
    with pytest.raises(SystemExit, match=r"score: .*hyp/text does not exist \(the system output"):
        score.main(["--ref_dir", str(data_dir), "--hyp_dir", str(tmp_path / "hyp"), "--output",
                    str(tmp_path / "s.json"), "--semantic", "false"])
    assert not (tmp_path / "s.json").exists()


# -- round 3: data dirs that looked valid ------------------------------------------------------------

def test_a_byte_order_mark_is_refused_by_name_and_fix_drops_nothing(data_dir):
    text = data_dir / "text"
    text.write_bytes(b"\xef\xbb\xbf" + text.read_bytes())
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}
    with pytest.raises(datadir.DataDirError, match=rf"{text}:1: starts with a UTF-8 byte-order mark \(BOM\)"):
        datadir.validate(data_dir)
    proc = run([str(UTILS / "fix_data_dir.sh"), str(data_dir)], check=False)
    assert proc.returncode != 0 and "byte-order mark" in proc.stderr and str(text) in proc.stderr
    assert {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()} == before  # nothing dropped


def test_utt2spk_with_a_second_field_is_named_in_validate_and_fix(data_dir):
    path = data_dir / "utt2spk"
    lines = path.read_text().splitlines()
    lines[1] += " extra"
    path.write_text("\n".join(lines) + "\n")
    before = path.read_text()
    with pytest.raises(datadir.DataDirError, match=rf"{path}:2: utterance 'spk1_utt1' has 2 fields after the id"):
        datadir.validate(data_dir)
    proc = run([str(UTILS / "fix_data_dir.sh"), str(data_dir)], check=False)
    assert proc.returncode != 0 and f"{path}:2: utterance 'spk1_utt1' has 2 fields" in proc.stderr
    assert path.read_text() == before and (data_dir / "spk2utt").read_text().count("spk1_utt1") == 1


@pytest.mark.parametrize("channel", ["-1", "first", "1.5"])
def test_utt2channel_must_be_a_0_based_channel_number(tmp_path, channel):
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    (d / "utt2channel").write_text(f"spkA_u0 {channel}\n")
    with pytest.raises(SystemExit, match=rf"utt2channel:1: utterance 'spkA_u0': channel '{channel}' is not a 0-based"):
        _format(d, tmp_path / "out")
    with pytest.raises(datadir.DataDirError, match=rf"utt2channel:1: utterance 'spkA_u0': channel '{channel}'"):
        datadir.validate(d)


# -- round 3: labels, stages out of order, a full disk, a shell without path.sh ---------------------

@pytest.mark.parametrize("label", ["Sad", "excited"])
def test_a_label_the_configs_do_not_know_stops_stage_4_and_5_by_name(data_dir, tmp_path, label):
    import yaml

    from conftest import ROOT
    from espnet_ext.bin import teacher_generate
    from espnet_ext.tasks.palign import check_emotion_labels

    emo = data_dir / "utt2emo"
    lines = emo.read_text().splitlines()
    lines[2] = f"{lines[2].split()[0]} {label}"
    emo.write_text("\n".join(lines) + "\n")
    config = tmp_path / "teacher.yaml"
    config.write_text(yaml.safe_dump({"llm_conf": {"name_or_path": "unused"},
                                      "prompt_conf": str(ROOT / "conf" / "prompts" / "emotion.yaml")}))
    with pytest.raises(SystemExit, match=rf"utterance 'spk1_utt2' \(utt2emo line 3\): label '{label}' has no entry"):
        teacher_generate.main(["prepare", "--config", str(config), "--out", str(tmp_path / "t"),
                               "--data_dirs", str(data_dir)])
    with pytest.raises(SystemExit, match=rf"{emo}:3: utterance 'spk1_utt2': emotion label '{label}' is not in the "
                                         rf"training config's aux_conf.labels"):
        check_emotion_labels([(str(emo), "emotion_label", "text")], ["angry", "happy", "neutral", "sad"])


def test_stage_options_must_be_whole_numbers_and_stages_need_their_inputs(tmp_path):
    from conftest import ROOT

    recipe = tmp_path / "egs" / "x" / "palign1"
    run([str(ROOT / "egs" / "TEMPLATE" / "palign1" / "setup.sh"), str(recipe)])
    shutil.copy(ROOT / "egs" / "synth_emo" / "palign1" / "conf" / "train_tiny.yaml", recipe / "train.yaml")
    common = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "test", "--palign_config", "train.yaml",
              "--teacher_config", "teacher.yaml"]

    def palign(*argv):
        proc = run(["./palign.sh", *argv, *common], cwd=recipe, check=False)
        assert proc.returncode != 0
        return proc.stderr

    assert "--stage must be a whole number, got '4a'" in palign("--stage", "4a")
    assert "--stop_stage must be a whole number, got 'six'" in palign("--stop_stage", "six")
    err = palign("--stage", "6", "--stop_stage", "6")
    assert "stage 6 needs dump/raw/train/wav.scp, which stage 2 writes: run stage 2 first (--stage 2)" in err
    for split in ("train", "valid", "test"):
        make_data_dir(recipe / "dump" / "raw" / split, [("spkA_u0", "spkA")])
    err = palign("--stage", "6", "--stop_stage", "6")
    assert "stage 6 needs exp/teacher/meta.yaml, which stage 4 writes: run stage 4 first (--stage 4)" in err
    err = palign("--stage", "7", "--stop_stage", "7")
    assert "stage 7 needs exp/palign_train/config.yaml, which stage 6 writes: run stage 6 first" in err


def test_stage4_on_a_full_disk_names_the_file_and_a_rerun_completes(teacher_run, tmp_path):
    from espnet_ext.teacher import read_jsonl

    config, ref = teacher_run
    out = tmp_path / "t"
    out.mkdir()
    shutil.copy(ref / "prompts.jsonl", out / "prompts.jsonl")
    code = ("import sys; from espnet_ext.bin import teacher_generate\n"
            f"sys.exit(teacher_generate.main(['generate', '--config', '{config}', '--out', '{out}']))")
    proc = _limited(1500, code)  # prompts.jsonl is read, generation.yaml written, then the replies stop
    assert proc.returncode != 0, proc.stderr
    assert f"cannot write {out / 'replies.1.jsonl'}: File too large" in proc.stderr and "rerun (it resumes)" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _limited(10 ** 7, code)
    assert proc.returncode == 0, proc.stderr
    got = read_jsonl(out / "replies.1.jsonl")
    want = {r["id"]: r["reply"] for p in sorted(ref.glob("replies.*.jsonl")) for r in read_jsonl(p)}
    assert len(got) == len(want) and {r["id"]: r["reply"] for r in got} == want  # complete, each reply once, the same as an uninterrupted run


def test_teacher_generate_without_path_sh_expands_main_root(tmp_path):
    """The recipes' YAMLs say ${MAIN_ROOT}/conf/prompts/...; without path.sh it is this checkout."""
    import sys

    from conftest import ROOT

    config = tmp_path / "teacher.yaml"
    config.write_text("llm_conf: {name_or_path: unused}\nprompt_conf: ${MAIN_ROOT}/conf/prompts/emotion.yaml\n")
    d = make_data_dir(tmp_path / "d", [("spkA_u0", "spkA")])
    proc = run(["env", "-u", "MAIN_ROOT", sys.executable, "-m", "espnet_ext.bin.teacher_generate", "prepare", "--config", str(config),
                "--out", str(tmp_path / "t"), "--data_dirs", str(d)], cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t" / "prompts.jsonl").read_text().count("\n") == 2  # response and response_neutral
    config.write_text(config.read_text().replace("${MAIN_ROOT}", "${NO_SUCH_ROOT}"))
    proc = run([sys.executable, "-m", "espnet_ext.bin.teacher_generate", "prepare", "--config", str(config),
                "--out", str(tmp_path / "t"), "--data_dirs", str(d)], cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "prompt_conf: '${NO_SUCH_ROOT}/conf/prompts/emotion.yaml' uses $NO_SUCH_ROOT, " \
                                   "which is not set" in proc.stderr and "Traceback" not in proc.stderr
    assert str(ROOT) not in config.read_text()


def test_an_llm_that_cannot_be_loaded_stops_before_any_job(tmp_path, tiny_llm, capsys):
    """palign.sh asks check_llm before stages 4-6 start their jobs: offline, a hub id not in the cache is
    named at once with what to do; a local folder without weights is named too; a complete one passes."""
    import os
    import shutil

    from espnet_ext.bin import check_llm

    def config(name):
        path = tmp_path / f"c{len(list(tmp_path.glob('c*.yaml')))}.yaml"
        path.write_text(f"llm_conf: {{name_or_path: {name}}}\n")
        return path

    hub = config("meta-llama/Meta-Llama-3-8B-Instruct")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        assert check_llm.main([str(hub)]) == 1
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    err = capsys.readouterr().err
    assert f"{hub}: llm_conf.name_or_path 'meta-llama/Meta-Llama-3-8B-Instruct' is not in the hub cache" in err
    assert "set llm_conf.name_or_path to DIR" in err
    empty = tmp_path / "no_weights"
    shutil.copytree(tiny_llm, empty, ignore=shutil.ignore_patterns("*.safetensors"))
    assert check_llm.main([str(config(empty)), str(config(tmp_path / "gone"))]) == 1
    err = capsys.readouterr().err
    assert "has no weight files" in err and f"'{tmp_path / 'gone'}' does not exist" in err
    assert check_llm.main([str(config(tiny_llm))]) == 0
