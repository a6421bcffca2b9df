"""Greedy replies to text prompts (the teacher of stage 4, the text baselines of stages 9 and 11) from one of
two engines, chosen by ``backend`` in the teacher YAML:

- ``hf`` (default): transformers, batched and prefix-cached (``FrozenLLM.generate_from_text``); CPU or GPU.
- ``vllm``: vLLM's offline ``LLM.generate`` (paged attention, continuous batching) for GPU clusters, where
  Llama-3-8B over MSP-Podcast is millions of tokens. vLLM pins its own torch: ``tools/install.sh --vllm``
  builds ``tools/venv_vllm``, and ``palign.sh --teacher_python tools/venv_vllm/bin/python`` runs stage 4 in it.

Both render each prompt with the same chat template and system turn (identical token ids), decode greedily,
stop at the same end-of-turn ids and cut replies the same way, and report the weights fingerprint that
training checks the targets against.
"""
import logging
from typing import List, Optional, Sequence

BACKENDS = ("hf", "vllm")


class HFGenerator:
    """transformers' generate on a :class:`FrozenLLM`."""

    def __init__(self, llm_conf: dict, system: Optional[str], device: str = "cpu"):
        from espnet_ext.palign.llm import FrozenLLM

        self.llm = FrozenLLM(llm_conf["name_or_path"], dtype=llm_conf.get("dtype", "auto"), system=system,
                             attn_implementation=llm_conf.get("attn_implementation", "sdpa"), device=device)
        self.chat, self.fingerprint = self.llm.chat, self.llm.fingerprint

    def generate(self, users: Sequence[str], max_new_tokens: int) -> List[str]:
        return self.llm.generate_from_text(users, max_new_tokens)


def prompt_token_ids(chat, users: Sequence[str]) -> List[List[int]]:
    """The token ids of each rendered user turn, exactly as the HF path feeds them (no second BOS)."""
    return [chat.encode(chat.render(u)) for u in users]


def weights_fingerprint(name_or_path: str) -> str:
    """The fingerprint :class:`FrozenLLM` computes, from the same weights loaded once on the CPU (vLLM keeps
    its copy inside its workers): the same definition, so stage 6 accepts these targets."""
    import torch
    from transformers import AutoModelForCausalLM

    from espnet_ext.palign.llm import fingerprint

    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.bfloat16, low_cpu_mem_usage=True)
    try:
        return fingerprint(model)
    finally:
        del model


class VLLMGenerator:
    """vLLM's offline engine, greedy. ``vllm_conf`` goes to ``vllm.LLM`` (e.g. tensor_parallel_size,
    gpu_memory_utilization, max_model_len; ``load_format: dummy`` gives random weights, for benchmarks only)."""

    def __init__(self, llm_conf: dict, system: Optional[str], vllm_conf: Optional[dict] = None):
        try:
            import vllm
        except ImportError as e:
            raise SystemExit(f"backend: vllm needs the vllm package ({e}). Install it into its own environment "
                             "with tools/install.sh --vllm and run stage 4 with palign.sh --teacher_python "
                             "tools/venv_vllm/bin/python, or use backend: hf") from None
        from espnet_ext.palign.llm import ChatTokenizer

        name = llm_conf["name_or_path"]
        conf = dict(vllm_conf or {})
        dtype = llm_conf.get("dtype", "auto")
        dtype = "auto" if dtype == "bf16_if_native" else dtype  # vLLM runs on GPUs: its auto picks bf16
        self.chat = ChatTokenizer(name, system)
        self.fingerprint = ("dummy-weights" if conf.get("load_format") == "dummy"
                            else weights_fingerprint(name))
        conf.setdefault("seed", 0)
        self.engine = vllm.LLM(model=name, tokenizer=name, dtype=dtype, **conf)
        self._vllm = vllm
        logging.info(f"vLLM engine for {name} ({dtype}), options {conf}, fingerprint {self.fingerprint[:12]}")

    def generate(self, users: Sequence[str], max_new_tokens: int) -> List[str]:
        params = self._vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens,
                                           stop_token_ids=list(self.chat.stop_ids))
        prompts = [{"prompt_token_ids": ids} for ids in prompt_token_ids(self.chat, users)]
        outputs = self.engine.generate(prompts, params, use_tqdm=False)
        return self.chat.decode([list(o.outputs[0].token_ids) for o in outputs])


def make_generator(llm_conf: dict, system: Optional[str], device: str = "cpu", backend: str = "hf",
                   vllm_conf: Optional[dict] = None):
    """The generator a teacher YAML asks for (``backend``, ``vllm_conf``)."""
    if backend == "hf":
        return HFGenerator(llm_conf, system, device)
    if backend == "vllm":
        if device == "cpu":
            logging.warning("backend: vllm on --device cpu: vLLM places the model itself (its GPU build needs a GPU)")
        return VLLMGenerator(llm_conf, system, vllm_conf)
    raise SystemExit(f"unknown generation backend '{backend}': choose one of {', '.join(BACKENDS)}")
