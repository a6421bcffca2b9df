"""Real-scale ParaAlign on one GPU, with random weights: peak memory and tokens/s of a training step (batch 8
and 16) and of greedy decoding, and vLLM's teacher throughput if vLLM is installed.

Nothing can be downloaded on a lent GPU machine, so the weights are random and only the shapes are real:
the LLM has Llama-3-8B-Instruct's config (bf16, gradient checkpointing, as the real config says), the
frontend is a random WavLM-Large saved as a local s3prl checkpoint (``wavlm_local``), the encoder and adapter
come from ``egs/msp_podcast/palign1/conf/train_wavlm_large_llama3_8b.yaml``. Speed and memory do not depend
on the values. ``--scale tiny`` runs the same code at toy shapes (the test suite does, on the CPU).

  python bench/gpu_scale.py                                  # one GPU, real scale (about 40 GB)
  python bench/gpu_scale.py --scale tiny --device cpu --batch_sizes 2 --seconds 1
"""
import argparse
import importlib.util
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MAIN_ROOT", str(ROOT))
REAL_CONFIG = ROOT / "egs/msp_podcast/palign1/conf/train_wavlm_large_llama3_8b.yaml"

# Meta-Llama-3-8B-Instruct's config.json (architecture only)
LLAMA3_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
             "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
# WavLM-Large's checkpoint cfg (s3prl's WavLMConfig keys)
WAVLM_LARGE = {"extractor_mode": "layer_norm", "encoder_layers": 24, "encoder_embed_dim": 1024,
               "encoder_ffn_embed_dim": 4096, "encoder_attention_heads": 16, "layer_norm_first": True,
               "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2", "conv_bias": False,
               "conv_pos": 128, "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320,
               "max_distance": 800, "gru_rel_pos": True, "normalize": True}
TINY_WAVLM = {"extractor_mode": "default", "encoder_layers": 2, "encoder_embed_dim": 32,
              "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2, "conv_pos": 16, "conv_pos_groups": 4,
              "conv_feature_layers": "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2",
              "relative_position_embedding": True, "num_buckets": 32, "max_distance": 64, "normalize": False}
TINY_ENCODER = {"output_size": 32, "attention_heads": 2, "linear_units": 64, "num_blocks": 1}


def make_llm_folder(out: Path, scale: str) -> Path:
    """A tokenizer with a chat template (the project's tiny one) and, at real scale, Llama-3-8B's shapes."""
    from espnet_ext.bin import prepare_llm

    folder = out / "llm"
    prepare_llm.main(["--source", "tiny", "--out", str(folder), "--corpus",
                      str(ROOT / "egs/synth_emo/palign1/local/sentences.txt"), "--log_level", "WARNING"])
    if scale == "real":
        config = json.loads((folder / "config.json").read_text())
        config.update(LLAMA3_8B)
        (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def make_wavlm_checkpoint(out: Path, scale: str) -> Path:
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    cfg = WAVLM_LARGE if scale == "real" else TINY_WAVLM
    path = out / "wavlm.pt"
    torch.save({"cfg": cfg, "model": WavLM(WavLMConfig(cfg)).state_dict()}, path)
    return path


def build_model(scale: str, device: str, workdir: Path):
    from espnet_ext.tasks.palign import PalignTask

    conf = yaml.safe_load(REAL_CONFIG.read_text())
    conf["llm_conf"].update(name_or_path=str(make_llm_folder(workdir, scale)), random_init=True, device=device)
    conf["frontend_conf"]["frontend_conf"] = {"upstream": "wavlm_local",
                                             "path_or_url": str(make_wavlm_checkpoint(workdir, scale))}
    # no corpus here: per-utterance normalisation instead of stage 5's statistics, four emotion labels
    conf["normalize"] = "utterance_mvn"
    if isinstance((conf.get("aux_conf") or {}).get("labels"), str):
        conf["aux_conf"]["labels"] = ["angry", "happy", "neutral", "sad"]
    if scale == "tiny":
        conf["encoder_conf"].update(TINY_ENCODER)
        conf["speech_adapter_conf"]["hidden_size"] = 32
        conf["llm_conf"]["dtype"] = "float32"
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(conf))
    model = PalignTask.build_model(PalignTask.get_parser().parse_args(["--config", str(path)]))
    return model.to(device), conf


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20:.1f} GiB RSS (CPU)"


def timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up (kernels, allocator, the prefix cache)
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_training(model, device: str, batch_size: int, seconds: float, reply_tokens: int, repeats: int):
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    speech = 0.1 * torch.randn(batch_size, int(16000 * seconds), device=device)
    lengths = torch.full((batch_size,), speech.shape[1], device=device)
    vocab = min(model.llm.model.get_input_embeddings().weight.shape[0], len(model.llm.chat.tokenizer))
    reply = torch.randint(10, vocab - 1, (batch_size, reply_tokens), device=device)
    reply_lengths = torch.full((batch_size,), reply_tokens, device=device)
    model.train()

    def step():
        optim.zero_grad(set_to_none=True)
        labels = {} if model.aux_head is None else {"emotion_label": torch.zeros(batch_size, 1, dtype=torch.long,
                                                                              device=device)}
        loss, _, _ = model(speech, lengths, response=reply, response_lengths=reply_lengths, **labels)
        loss.backward()
        optim.step()

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = timed(step, device, repeats)
    with torch.no_grad():
        _, emb_lengths = model.encode(speech, lengths)
    row = len(model.prefix_response) + int(emb_lengths[0]) + len(model.suffix_response) + reply_tokens
    return t, batch_size * row / t, row, peak_memory(device)


def bench_decoding(model, device: str, batch_size: int, seconds: float, new_tokens: int, repeats: int):
    speech = 0.1 * torch.randn(batch_size, int(16000 * seconds), device=device)
    lengths = torch.full((batch_size,), speech.shape[1], device=device)
    model.eval()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = timed(lambda: model.generate(speech, lengths, max_new_tokens=new_tokens), device, repeats)
    # random weights almost never emit the end of turn: every row generates new_tokens
    return t, batch_size * new_tokens / t, peak_memory(device)


def bench_vllm(llm_dir: Path, prompts: int, new_tokens: int) -> str:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM teacher: not installed in this environment (tools/install.sh --vllm)"
    from espnet_ext.text_generation import VLLMGenerator, prompt_token_ids

    sys.path.insert(0, str(ROOT / "bench"))
    from teacher_speed import teacher_prompts

    gen = VLLMGenerator({"name_or_path": str(llm_dir), "dtype": "bfloat16"}, None,
                        {"load_format": "dummy", "gpu_memory_utilization": 0.85})
    params = gen._vllm.SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    batch = [{"prompt_token_ids": ids} for ids in prompt_token_ids(gen.chat, teacher_prompts(prompts))]
    gen.engine.generate(batch[:8], params, use_tqdm=False)  # warm-up
    t = time.perf_counter()
    out = gen.engine.generate(batch, params, use_tqdm=False)
    t = time.perf_counter() - t
    n = sum(len(o.outputs[0].token_ids) for o in out)
    return f"vLLM teacher: {prompts} prompts x {new_tokens} new tokens in {t:.1f} s: {n / t:,.0f} tokens/s"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=["real", "tiny"], default="real")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 16])
    p.add_argument("--seconds", type=float, default=10.0, help="audio per utterance")
    p.add_argument("--reply_tokens", type=int, default=64, help="teacher reply tokens per row")
    p.add_argument("--decode_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vllm_prompts", type=int, default=512)
    p.add_argument("--workdir", type=Path, default=None, help="where the random checkpoints go (default: a temp dir)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_scale."))
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    model, conf = build_model(args.scale, args.device, workdir)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}; scale {args.scale}; "
          f"LLM {sum(p.numel() for p in model.llm.model.parameters()) / 1e9:.2f}B params {model.llm.dtype}, "
          f"gradient checkpointing {model.llm.gradient_checkpointing}; trainable {trainable / 1e6:.1f}M; "
          f"built in {time.perf_counter() - t:.0f} s")
    print("| what | batch | tokens/row | s/step | LLM tokens/s | peak memory |")
    print("|---|---|---|---|---|---|")
    for b in args.batch_sizes:
        step, tps, row, mem = bench_training(model, args.device, b, args.seconds, args.reply_tokens, args.repeats)
        print(f"| training step ({args.seconds:g} s speech, {args.reply_tokens} reply tokens) | {b} | {row} | "
              f"{step:.3f} | {tps:,.0f} | {mem} |")
    b = max(args.batch_sizes)
    step, tps, mem = bench_decoding(model, args.device, b, args.seconds, args.decode_tokens, args.repeats)
    print(f"| greedy decoding ({args.decode_tokens} new tokens) | {b} | - | {step:.3f} | {tps:,.0f} new | {mem} |")
    llm_dir = Path(conf["llm_conf"]["name_or_path"])
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        print(bench_vllm(llm_dir, args.vllm_prompts, args.decode_tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
