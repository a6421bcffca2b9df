"""bench/gpu_scale.py (the real-scale GPU benchmark) at toy shapes on the CPU, so that it cannot rot before a
GPU machine runs it: same build path (random-weight LLM from a config.json, a local WavLM checkpoint, the real
training config), same measurements."""
import re
import sys

from conftest import ROOT, run


def test_gpu_scale_benchmark_runs_at_tiny_shapes(tmp_path):
    out = run([sys.executable, str(ROOT / "bench" / "gpu_scale.py"), "--scale", "tiny", "--device", "cpu",
               "--batch_sizes", "2", "3", "--seconds", "1", "--reply_tokens", "8", "--decode_tokens", "4",
               "--repeats", "1", "--workdir", str(tmp_path)]).stdout
    assert "gradient checkpointing True" in out  # as the real config says
    rows = re.findall(r"^\| training step .*\| (\d+) \| (\d+) \| ([\d.]+) \| ([\d,]+) \| ([\d.]+) GiB", out, re.M)
    assert [r[0] for r in rows] == ["2", "3"]
    assert all(float(r[2]) > 0 and int(r[3].replace(",", "")) > 0 for r in rows)
    # 1 s of speech at 12.5 tokens/s, the prompt around it and 8 reply tokens
    assert all(int(r[1]) > 8 + 12 for r in rows)
    assert re.search(r"^\| greedy decoding \(4 new tokens\) \| 3 \|", out, re.M)
    assert (tmp_path / "wavlm.pt").exists() and (tmp_path / "llm" / "config.json").exists()
