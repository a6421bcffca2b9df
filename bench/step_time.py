"""Training step time of ParaAlign divided by the uncached frozen-LLM floor.

The floor is what the LLM alone costs on the whole row, as a plain implementation pays it: forward +
backward to its input embeddings (no weight gradients) over [prefix | speech | suffix | full reply], with
the reply-position LM head and cross-entropy. The step is a full training step as the config sets it:
frontend, encoder, adapter, the prompt prefix from the frozen LLM's KV cache, targets cut to
``max_target_tokens``, the auxiliary loss, backward and an optimizer step. Both are timed in the same
process, interleaved, after warm-up; the ratio is printed (target <= 0.8).

  python bench/step_time.py --llm egs/synth_emo/palign1/downloads/llm/SmolLM2-135M-Instruct \\
      --config egs/synth_emo/palign1/conf/train_smollm2.yaml [--batch_size 8 --seconds 3 --reply_tokens 30]
      [--dtype bfloat16]
"""
import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MAIN_ROOT", str(ROOT))  # recipe configs name prompt files under ${MAIN_ROOT}


def build(config: Path, llm: str, dtype=None):
    from espnet_ext.tasks.palign import PalignTask

    conf = yaml.safe_load(config.read_text())
    conf["llm_conf"]["name_or_path"] = llm
    if dtype:
        conf["llm_conf"]["dtype"] = dtype
    if conf.get("normalize") == "global_mvn":
        conf["normalize"] = "utterance_mvn"  # no stats file needed; same cost
    conf["task_conf"] = {}  # every row a reply row, as the floor
    path = Path("/tmp/palign_bench_config.yaml")
    path.write_text(yaml.safe_dump(conf))
    args = PalignTask.get_parser().parse_args(["--config", str(path)])
    model = PalignTask.build_model(args)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return model, optim


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llm", required=True)
    p.add_argument("--config", type=Path, default=ROOT / "egs/synth_emo/palign1/conf/train_smollm2.yaml")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0, help="audio per utterance")
    p.add_argument("--reply_tokens", type=int, default=25, help="the teacher's 24 tokens + end of turn")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--dtype", default=None, help="the LLM's dtype instead of the config's (e.g. bfloat16: on a "
                                                  "CPU with avx512_bf16 or AMX, compare with float32)")
    args = p.parse_args()
    torch.manual_seed(0)
    model, optim = build(args.config, args.llm, args.dtype)
    model.train()
    b = args.batch_size
    speech = torch.randn(b, int(16000 * args.seconds)) * 0.1
    speech_lengths = torch.full((b,), speech.shape[1])
    vocab = model.llm.model.get_input_embeddings().weight.shape[0]
    reply = torch.randint(10, vocab - 10, (b, args.reply_tokens))
    reply_lengths = torch.full((b,), args.reply_tokens)

    labels = torch.arange(b)[:, None] % max(1, len(model.aux_labels))
    extra = {"emotion_label": labels} if model.aux_head is not None else {}

    def step():
        optim.zero_grad()
        loss, _, _ = model(speech, speech_lengths, response=reply, response_lengths=reply_lengths, **extra)
        loss.backward()
        optim.step()

    with torch.no_grad():
        emb, emb_lengths = model.encode(speech, speech_lengths)
    model.cache_prefix = False
    inputs, mask, index, _ = model.splice("response", emb, emb_lengths, reply, reply_lengths)
    model.cache_prefix = True
    target = reply.reshape(-1)

    def floor():
        x = inputs.detach().requires_grad_(True)
        logits = model.reply_logits(x, mask, index)
        torch.nn.functional.cross_entropy(logits, target).backward()

    for f in (step, floor):  # warm-up
        f()
    times = {"step": [], "floor": []}
    for _ in range(args.repeats):
        for name, f in (("step", step), ("floor", floor)):
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    step_t, floor_t = statistics.median(times["step"]), statistics.median(times["floor"])
    print(f"LLM: {args.llm} ({model.llm.dtype})")
    print(f"batch {b} x ({inputs.shape[1]} tokens uncached: prefix {len(model.prefix_response)}, speech "
          f"{int(emb_lengths[0])}, reply {args.reply_tokens}), {torch.get_num_threads()} threads")
    print(f"training step as configured (prefix cache {model.cache_prefix}, max_target_tokens "
          f"{model.max_target_tokens}), median of {args.repeats}: {step_t:.3f} s")
    print(f"uncached frozen-LLM floor, fwd + bwd to inputs:   {floor_t:.3f} s")
    print(f"ratio step / floor: {step_t / floor_t:.3f}  (target <= 0.8)")


if __name__ == "__main__":
    main()
