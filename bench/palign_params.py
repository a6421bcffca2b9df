"""Parameters, batch and GPU memory of a real-scale ParaAlign training config, computed without its weights:
the frozen LLM (Llama-3-8B-Instruct's config.json, on PyTorch's meta device) and WavLM-Large (its released
architecture) are built and counted; the trainable preencoder, encoder, adapter and emotion head are built from
the config on the CPU. Memory is an analytic estimate at the config's batch (formulas below); bench/gpu_scale.py
measures the real thing on a GPU. The config's header quotes these lines and a test checks them.

  python bench/palign_params.py egs/msp_podcast/palign1/conf/train_wavlm_large_llama3_8b.yaml --seconds 6

Memory terms (bytes): LLM weights in bf16 (2 per parameter); WavLM-Large in fp32 (4); trainable weights,
gradients and AdamW's two moments (16 per parameter); the LLM's activations with gradient checkpointing: one
bf16 hidden state per layer and token, plus one layer recomputed in backward (q, k, v, o, the MLP's gate, up
and activation: (6 H + 3 I) per token); fp32 logits and their gradient at the reply positions; WavLM's layer
outputs kept for the learnable weighted sum (fp32, every layer) and the encoder's activations (about 20 model
widths per frame and block, fp32).
"""
import argparse
import functools
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_scale import LLAMA3_8B, WAVLM_LARGE  # noqa: E402 - the released architectures

PROMPT_TOKENS = 40  # Llama-3's chat template + the system prompt + the user turn around the speech


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def size(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


@functools.lru_cache(maxsize=None)  # the same for every config: built once a process
def frozen_counts():
    """(LLM parameters, WavLM-Large parameters): the LLM on the meta device (no memory), WavLM-Large on the
    CPU (its initialisation cannot run on meta; 1.3 GB for a moment); nothing is downloaded."""
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        llm = count(LlamaForCausalLM(LlamaConfig(**LLAMA3_8B)))
    return llm, count(WavLM(WavLMConfig(WAVLM_LARGE)))


def trainable_parts(conf: dict, num_labels: int = 4):
    """The modules ParaAlign trains, from the config: preencoder, encoder, adapter, emotion head."""
    from espnet_ext.palign.model import SpeechAdapter
    from espnet_ext.tasks.palign import encoder_choices, encoder_frame_rate, preencoder_choices

    width = WAVLM_LARGE["encoder_embed_dim"]
    parts = {}
    if conf.get("preencoder"):
        pre_conf = dict(conf.get("preencoder_conf") or {}, input_size=width)
        parts["preencoder"] = preencoder_choices.get_class(conf["preencoder"])(**pre_conf)
        width = parts["preencoder"].output_size()
    encoder = encoder_choices.get_class(conf["encoder"])(input_size=width, **conf["encoder_conf"])
    parts["encoder"] = encoder
    adapter_conf = dict(conf.get("speech_adapter_conf") or {})
    rate = encoder_frame_rate(encoder, width, 50.0)  # WavLM: 50 frames/s
    stack = adapter_conf.pop("stack", None) or max(1, round(rate / adapter_conf.pop("tokens_per_second", 12.5)))
    adapter_conf.pop("tokens_per_second", None)
    parts["adapter"] = SpeechAdapter(encoder.output_size(), LLAMA3_8B["hidden_size"], stack=stack, **adapter_conf)
    if float((conf.get("aux_conf") or {}).get("weight", 0)) > 0:
        parts["emotion head"] = torch.nn.Linear(encoder.output_size(), num_labels)
    return parts, rate, rate / stack


def rows_per_batch(conf: dict, seconds: float) -> float:
    if conf.get("batch_type") == "numel":  # speech samples dominate the numel of a row
        return conf["batch_bins"] / (16000 * seconds)
    return float(conf["batch_size"])


def summary(config_path: str, seconds: float = 10.0, reply_tokens: int = 64) -> str:
    conf = yaml.safe_load(open(config_path))
    llm, ssl = frozen_counts()
    parts, enc_rate, token_rate = trainable_parts(conf)
    trainable = sum(count(m) for m in parts.values())
    reply = min(reply_tokens, conf.get("max_target_tokens") or reply_tokens)
    rows = rows_per_batch(conf, seconds)
    tokens = PROMPT_TOKENS + token_rate * seconds + reply  # per row
    h, i, n_layers, vocab = (LLAMA3_8B[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                     "vocab_size"))
    gib = 2 ** 30
    weights = (2 * llm + 4 * ssl + 16 * trainable) / gib
    llm_act = rows * tokens * (n_layers * h + 6 * h + 3 * i) * 2 / gib
    logits = rows * reply * vocab * 4 * 2 / gib
    ssl_frames = 50 * seconds
    ssl_act = rows * ssl_frames * WAVLM_LARGE["encoder_embed_dim"] * 4 * (WAVLM_LARGE["encoder_layers"] + 1) / gib
    enc = parts["encoder"]
    enc_act = rows * enc_rate * seconds * enc.output_size() * 4 * 20 * len(enc.encoders) / gib
    total = weights + llm_act + logits + ssl_act + enc_act
    line1 = (f"frozen LLM {llm / 1e9:.2f} B + WavLM-Large {ssl / 1e6:.1f} M; trainable "
             + " + ".join(f"{name} {size(count(m))}" for name, m in parts.items())
             + f" = {trainable / 1e6:.1f} M")
    line2 = (f"batch ~{rows:.0f} rows of {seconds:g} s ({token_rate:.1f} speech tokens/s, {tokens:.0f} LLM tokens a row); "
             f"GPU memory ~{total:.0f} GiB = weights and optimizer {weights:.1f} + LLM activations {llm_act:.1f} + "
             f"logits {logits:.1f} + WavLM layers {ssl_act:.1f} + encoder {enc_act:.1f}")
    return line1 + "\n" + line2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a training YAML with frontend s3prl (WavLM-Large) and a Llama-3-8B LLM")
    p.add_argument("--seconds", type=float, default=10.0, help="the utterance length the batch is sized for")
    p.add_argument("--reply_tokens", type=int, default=64, help="teacher reply tokens (cut to max_target_tokens)")
    args = p.parse_args(argv)
    print(summary(args.config, args.seconds, args.reply_tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
