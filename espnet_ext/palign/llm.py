"""The frozen LLM: loading, a weights fingerprint, chat-template splicing and batched greedy generation.

The LLM is never trained. It is kept outside the trainable model's parameters (see model.py), so it is
neither in the optimizer nor in checkpoints; checkpoints carry only its fingerprint.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from espnet_ext.palign.prompts import student_turn

SPEECH = "<speech>"  # placeholder for the speech embeddings in a user turn


def native_bf16(device: torch.device) -> bool:
    """Does the hardware compute bf16 matmuls natively (a CUDA GPU with bf16, a CPU with avx512_bf16/AMX)?"""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto': bf16 on a CUDA device that supports it, else fp32. 'bf16_if_native': bf16 also on a CPU that
    computes it natively (there, a frozen LLM's training step is ~1.5x faster; on other CPUs bf16 is
    emulated and slow, so fp32)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else torch.float32
    if name == "bf16_if_native":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise ValueError(f"llm_conf.dtype: unknown dtype {name!r} (auto, bf16_if_native, bfloat16, float16, float32)")
    return getattr(torch, name)


def fingerprint(model: torch.nn.Module, samples_per_tensor: int = 4096) -> str:
    """A cheap, dtype-independent hash of the weights: names, shapes and evenly strided values rounded to
    bf16. Identifies the checkpoint an encoder was aligned to without hashing 16 GB of weights."""
    h = hashlib.sha1()
    for name, p in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(p.shape)}".encode())
        flat = p.detach().reshape(-1)
        if flat.numel() == 0 or not flat.is_floating_point():
            continue
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step][:samples_per_tensor].to("cpu", torch.bfloat16).view(torch.int16)
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


@dataclass
class ChatPrompt:
    """Token ids of a user turn rendered by the LLM's chat template, split around the speech."""
    prefix: List[int]   # everything before the speech (system turn, user-turn header, text before <speech>)
    suffix: List[int]   # everything after it, up to and including the assistant-turn header


def check_local_path(name_or_path: str) -> None:
    """A name that can only be a folder (absolute, ./, ~ or more than one '/') must exist: otherwise
    transformers takes it for a hub id and fails with a message about repo names."""
    name = str(name_or_path)
    if Path(name).expanduser().exists():
        return
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"LLM folder '{name}' does not exist (prepare it first, e.g. the recipe's "
                                f"local/prepare_llm.sh, or give a Hugging Face id such as org/name)")


class ChatTokenizer:
    """The LLM's tokenizer and chat template, without the weights (what data loaders need)."""

    def __init__(self, name_or_path: str, system: Optional[str] = None):
        from transformers import AutoTokenizer

        check_local_path(name_or_path)
        self.name_or_path = name_or_path
        self.system = system
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{name_or_path}: the tokenizer has no chat template; use an instruct model")
        self.end_of_turn = self._end_of_turn_id()
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.end_of_turn
        self.stop_ids = sorted({self.end_of_turn} | ({self.tokenizer.eos_token_id} - {None}))

    def _messages(self, user: str, reply: Optional[str] = None) -> List[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
        msgs.append({"role": "user", "content": user})
        if reply is not None:
            msgs.append({"role": "assistant", "content": reply})
        return msgs

    def render(self, user: str) -> str:
        """The full prompt text for a user turn, ending with the assistant-turn header."""
        return self.tokenizer.apply_chat_template(self._messages(user), tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _end_of_turn_id(self) -> int:
        """The token the template puts after an assistant reply (<|eot_id|>, <|im_end|>, ...)."""
        marker = "Q7xZ"
        text = self.tokenizer.apply_chat_template(self._messages("hi", marker), tokenize=False)
        after = text[text.rindex(marker) + len(marker):].strip()
        ids = self.encode(after) if after else []
        if ids:
            return ids[0]
        if self.tokenizer.eos_token_id is None:
            raise ValueError(f"{self.name_or_path}: cannot tell how the chat template ends a reply")
        return self.tokenizer.eos_token_id

    def speech_prompt(self, user: str) -> ChatPrompt:
        """Split a rendered user turn at the speech placeholder (exactly one is required)."""
        if user.count(SPEECH) != 1:
            raise ValueError(f"a speech prompt needs exactly one {SPEECH} placeholder: {user!r}")
        before, after = self.render(user).split(SPEECH)
        return ChatPrompt(prefix=self.encode(before), suffix=self.encode(after))

    def student_suffix(self, user: str, text: Optional[str], where: str = "") -> List[int]:
        """The ids after the speech of a student turn whose ``{text}`` is this utterance's transcript."""
        return self.speech_prompt(student_turn(user, text, where)).suffix

    @staticmethod
    def common_prefix(rows: Sequence[Sequence[int]]) -> List[int]:
        """The longest run of ids that every row starts with, less one id, so that no row is left empty."""
        shortest = min(len(r) for r in rows)
        n = 0
        while n < shortest - 1 and all(r[n] == rows[0][n] for r in rows):
            n += 1
        return list(rows[0][:n])

    def reply_ids(self, reply: str) -> List[int]:
        """Target ids of a reply: its tokens and the end-of-turn token, which teaches the LLM to stop."""
        return self.encode(reply.strip()) + [self.end_of_turn]

    def decode(self, rows: List[List[int]]) -> List[str]:
        """Generated ids to one-line replies (cut at the first stop token)."""
        replies = []
        stops = set(self.stop_ids)
        for row in rows:
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            text = self.tokenizer.decode(row[:cut], skip_special_tokens=True)
            replies.append(" ".join(text.split()))  # one line per reply in Kaldi-style files
        return replies


def contiguous_input(module, args):
    """Forward pre-hook of the LM head: generation's prefill asks for the logits of the last positions, a
    (B, 1, H) slice that is not contiguous, and ``F.linear`` then multiplies it with the head's weight
    expanded to (B, H, vocab), a copy per row (bf16 on a CPU: 0.76 s instead of 6 ms at batch 16 for
    SmolLM2's 49k vocabulary; fp32 4x). Contiguous, it is one matrix product; the result is the same."""
    return (args[0].contiguous(), *args[1:])


class FrozenLLM:
    """An HF causal LM, frozen, with its ChatTokenizer (``.chat``)."""

    def __init__(self, name_or_path: str, dtype: str = "auto", system: Optional[str] = None,
                 attn_implementation: Optional[str] = "sdpa", gradient_checkpointing: bool = False,
                 device: str = "cpu", random_init: bool = False):
        """``random_init``: the architecture of the folder's config.json with random weights, built on
        ``device`` (benchmarks of real-size shapes where the weights cannot be downloaded; never training)."""
        from transformers import AutoConfig, AutoModelForCausalLM

        self.name_or_path = name_or_path
        self.dtype_name = dtype
        self.chat = ChatTokenizer(name_or_path, system)
        device = torch.device(device)
        kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
        if random_init:
            config = AutoConfig.from_pretrained(name_or_path, **kw)
            with device:
                self.model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(dtype, device))
        else:
            self.model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=pick_dtype(dtype, device), **kw)
        self.model.to(device).eval().requires_grad_(False)
        head = self.model.get_output_embeddings()
        if head is not None:  # see contiguous_input
            head.register_forward_pre_hook(contiguous_input)
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:  # recompute activations in backward: needed for 8B models on one GPU
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            # transformers checkpoints a layer only while its own `training` flag is set, and the frozen model
            # stays in eval mode (no dropout): set that flag on the decoder layers alone, not their submodules.
            from transformers.modeling_layers import GradientCheckpointingLayer

            for m in self.model.modules():
                if isinstance(m, GradientCheckpointingLayer):
                    m.training = True
        self.fingerprint = fingerprint(self.model)
        self._prefix_cache: dict = {}
        # transformers >= 5 calls the KV cache `cache`; earlier versions `past_key_values`.
        self._cache_name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        logging.info(f"frozen LLM {name_or_path}: {sum(p.numel() for p in self.model.parameters()) / 1e6:.1f}M "
                     f"params, {self.model.dtype}, end-of-turn id {self.chat.end_of_turn}, "
                     f"fingerprint {self.fingerprint[:12]}")

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    def to(self, device: torch.device) -> "FrozenLLM":
        device = torch.device(device)
        if device != self.device:
            self.model.to(device=device, dtype=pick_dtype(self.dtype_name, device))
        return self

    # -- embedding, the frozen prefix's cache and generation -------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))

    def embed_ids(self, ids: Sequence[int]) -> torch.Tensor:
        """(T, H) embeddings of token ids in the LLM's dtype: prompt pieces that go in beside speech tokens."""
        return self.embed(torch.tensor(list(ids), dtype=torch.long, device=self.device)).to(self.dtype)

    @torch.no_grad()
    def prefix_kv(self, ids: Sequence[int]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of a constant prompt prefix (system turn, user-turn header), computed once: the
        LLM is frozen, so they never change and no gradient flows into them. Kept per device and dtype."""
        key = (tuple(int(i) for i in ids), str(self.device), self.dtype)
        if key not in self._prefix_cache:
            ids_t = torch.tensor([list(key[0])], device=self.device)
            out = self.model(input_ids=ids_t, use_cache=True)
            cache = out[self._cache_name]
            self._prefix_cache[key] = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix_cache[key]

    def prefix_cache(self, ids: Sequence[int], batch_size: int):
        """A fresh DynamicCache holding the prefix for ``batch_size`` rows (the model appends to it)."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=[(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1))
                                            for k, v in self.prefix_kv(ids)])

    def hidden_states(self, inputs: torch.Tensor, mask: torch.Tensor, prefix: Optional[Sequence[int]] = None):
        """Last hidden states (B, T, H) of ``inputs`` (B, T, H) embeddings, after the cached ``prefix`` ids
        if given (then ``mask`` covers ``inputs`` only)."""
        if prefix is None or len(prefix) == 0:
            return self.model.base_model(inputs_embeds=inputs, attention_mask=mask, use_cache=False).last_hidden_state
        b = inputs.shape[0]
        full_mask = torch.cat([mask.new_ones(b, len(prefix)), mask], 1)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            # A checkpointed layer runs without the KV cache (its replay would write it twice): the prefix
            # goes in as embeddings, at the cost of its forward.
            pre = self.embed_ids(prefix).to(inputs.dtype)
            full = torch.cat([pre[None].expand(b, -1, -1), inputs], 1)
            hidden = self.model.base_model(inputs_embeds=full, attention_mask=full_mask, use_cache=False).last_hidden_state
            return hidden[:, len(prefix):]
        return self.model.base_model(inputs_embeds=inputs, attention_mask=full_mask, use_cache=True,
                                     **{self._cache_name: self.prefix_cache(prefix, b)}).last_hidden_state

    @torch.no_grad()
    def generate_from_embeds(self, embeds: Sequence[torch.Tensor], max_new_tokens: int,
                             prefix: Optional[Sequence[int]] = None) -> List[str]:
        """Greedy replies for prompts given as embedding sequences (T_i, H), left-padded into one batch;
        with ``prefix`` (token ids), every prompt starts with it and it is taken from the prefix cache."""
        lengths = [e.shape[0] for e in embeds]
        width = max(lengths)
        n, p = len(embeds), len(prefix or [])
        batch = torch.zeros(n, width, self.hidden_size, dtype=self.dtype, device=self.device)
        mask = torch.zeros(n, p + width, dtype=torch.long, device=self.device)
        mask[:, :p] = 1
        for i, e in enumerate(embeds):
            batch[i, width - e.shape[0]:] = e.to(self.dtype)
            mask[i, p + width - e.shape[0]:] = 1
        kw = {}
        if p:  # generate() takes the whole sequence and skips the positions that the cache holds
            pre = self.embed_ids(prefix)
            batch = torch.cat([pre[None].expand(n, -1, -1), batch], 1)
            kw[self._cache_name] = self.prefix_cache(prefix, n)
        out = self.model.generate(inputs_embeds=batch, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, num_beams=1, pad_token_id=self.chat.pad_id,
                                  eos_token_id=self.chat.stop_ids, top_p=None, top_k=None, temperature=None, **kw)
        return self.chat.decode(out.tolist())

    @torch.no_grad()
    def generate_from_text(self, users: Sequence[str], max_new_tokens: int) -> List[str]:
        """Greedy replies to text-only user turns (the teacher). The part shared by every rendered prompt
        (system turn, user-turn header) comes from the prefix cache."""
        ids = [self.chat.encode(self.chat.render(u)) for u in users]
        prefix = self.chat.common_prefix(ids)
        embeds = [self.embed_ids(x[len(prefix):]) for x in ids]
        return self.generate_from_embeds(embeds, max_new_tokens, prefix)
