"""The data-dir tools accept good dirs and reject broken ones with the file and utterance named."""
import pytest

from conftest import UTILS, make_data_dir, run
from espnet_ext import datadir


def test_valid_dir_passes_with_counts(data_dir):
    counts = datadir.validate(data_dir)
    assert counts == {"utterances": 6, "speakers": 2, "emotions": 2}


def test_validate_script_prints_counts(data_dir):
    out = run([str(UTILS / "validate_data_dir.sh"), str(data_dir)], cwd=UTILS.parent).stdout
    assert "OK, 6 utterances, 2 speakers, 2 emotions" in out


def _lines(path):
    return path.read_text().splitlines()


def test_unsorted_file_names_file_line_and_utt(data_dir):
    lines = _lines(data_dir / "text")
    lines[1], lines[2] = lines[2], lines[1]
    (data_dir / "text").write_text("\n".join(lines) + "\n")
    proc = run([str(UTILS / "validate_data_dir.sh"), str(data_dir)], check=False)
    assert proc.returncode == 1
    assert f"{data_dir / 'text'}:3: not sorted: 'spk1_utt1'" in proc.stderr


def test_duplicate_key_is_named(data_dir):
    lines = _lines(data_dir / "utt2emo")
    lines.insert(1, lines[0])
    (data_dir / "utt2emo").write_text("\n".join(lines) + "\n")
    with pytest.raises(datadir.DataDirError, match=r"utt2emo:2: duplicate key 'spk1_utt0'"):
        datadir.validate(data_dir)


def test_missing_entry_is_named(data_dir):
    lines = [line for line in _lines(data_dir / "utt2emo") if not line.startswith("spk2_utt1 ")]
    (data_dir / "utt2emo").write_text("\n".join(lines) + "\n")
    with pytest.raises(datadir.DataDirError, match=r"utt2emo: utterance 'spk2_utt1' \(in utt2spk\) is missing"):
        datadir.validate(data_dir)


def test_extra_entry_is_named(data_dir):
    (data_dir / "text").write_text((data_dir / "text").read_text() + "spk3_utt9 stray line\n")
    with pytest.raises(datadir.DataDirError, match=r"text:7: utterance 'spk3_utt9' is not in utt2spk"):
        datadir.validate(data_dir)


def test_unreadable_audio_is_named(data_dir):
    (data_dir / "wav" / "spk1_utt2.wav").write_bytes(b"not a wav file")
    with pytest.raises(datadir.DataDirError, match=r"wav.scp:3: utterance 'spk1_utt2': unreadable audio"):
        datadir.validate(data_dir)
    assert datadir.validate(data_dir, check_audio=False)["utterances"] == 6


def test_missing_required_file_and_spk2utt_mismatch(data_dir):
    (data_dir / "spk2utt").write_text("spk1 spk1_utt0 spk1_utt1\nspk2 spk2_utt0 spk2_utt1 spk2_utt2\n")
    with pytest.raises(datadir.DataDirError, match="does not match utt2spk for speaker 'spk1'"):
        datadir.validate(data_dir)
    (data_dir / "utt2emo").unlink()
    with pytest.raises(datadir.DataDirError, match="missing required file 'utt2emo'"):
        datadir.validate(data_dir)


def test_fix_sorts_drops_and_reports(data_dir):
    lines = _lines(data_dir / "text")[::-1]
    (data_dir / "text").write_text("\n".join(lines[:-1]) + "\n")  # unsorted, one utterance lost
    dropped = datadir.fix(data_dir)
    assert dropped["utt2spk"] == 1 and dropped["text"] == 0
    assert datadir.validate(data_dir)["utterances"] == 5


def test_subset_split_combine_roundtrip(data_dir, tmp_path):
    parts = datadir.split(data_dir, 3)
    assert [datadir.validate(p)["utterances"] for p in parts] == [2, 2, 2]
    by_spk = datadir.split(data_dir, 2, by_speaker=True)
    assert [set(datadir.read_kv(p / "utt2spk").values()) for p in by_spk] == [{"spk1"}, {"spk2"}]
    merged = tmp_path / "merged"
    assert datadir.combine(merged, parts) == 6
    assert datadir.read_kv(merged / "text") == datadir.read_kv(data_dir / "text")
    with pytest.raises(datadir.DataDirError, match="is in both"):
        datadir.combine(tmp_path / "bad", [parts[0], parts[0]])
    sub = tmp_path / "sub"
    datadir.subset(data_dir, sub, ["spk2_utt0"])
    assert list(datadir.read_kv(sub / "wav.scp")) == ["spk2_utt0"]
    with pytest.raises(datadir.DataDirError, match="not in utt2spk"):
        datadir.subset(data_dir, tmp_path / "sub2", ["nobody"])


def test_split_script_and_too_many_parts(data_dir):
    run([str(UTILS / "split_data_dir.sh"), str(data_dir), "2"])
    assert (data_dir / "split2" / "2" / "wav.scp").exists()
    elsewhere = data_dir.parent / "decode_logdir" / "split3"  # stage 7: the data dir stays untouched
    run([str(UTILS / "split_data_dir.sh"), str(data_dir), "3", "--out", str(elsewhere)])
    assert [datadir.validate(elsewhere / str(i))["utterances"] for i in (1, 2, 3)] == [2, 2, 2]
    assert not (data_dir / "split3").exists()
    proc = run([str(UTILS / "split_data_dir.sh"), str(data_dir), "7"], check=False)
    assert proc.returncode == 1 and "cannot split 6 utterances into 7 parts" in proc.stderr


def test_segments_dir(tmp_path):
    d = make_data_dir(tmp_path / "rec", [("rec1", "rec1")])
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "wav.scp").write_text((d / "wav.scp").read_text())
    (seg / "segments").write_text("spkA_u1 rec1 0.0 0.2\nspkA_u2 rec1 0.2 0.4\n")
    (seg / "text").write_text("spkA_u1 a\nspkA_u2 b\n")
    (seg / "utt2spk").write_text("spkA_u1 spkA\nspkA_u2 spkA\n")
    (seg / "utt2emo").write_text("spkA_u1 sad\nspkA_u2 sad\n")
    (seg / "spk2utt").write_text("spkA spkA_u1 spkA_u2\n")
    assert datadir.validate(seg)["utterances"] == 2
    (seg / "segments").write_text("spkA_u1 rec1 0.0 0.2\nspkA_u2 rec9 0.2 0.4\n")
    with pytest.raises(datadir.DataDirError, match=r"segments:2: utterance 'spkA_u2': recording 'rec9'"):
        datadir.validate(seg)
