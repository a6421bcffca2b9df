"""The frozen LLM: loading, a weights fingerprint, chat-template splicing and batched greedy generation.

The LLM is never trained. It is kept outside the trainable model's parameters (see model.py), so it is
neither in the optimizer nor in checkpoints; checkpoints carry only its fingerprint.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch

SPEECH = "<speech>"  # placeholder for the speech embeddings in a user turn


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto': bf16 on a CUDA device that supports it, else fp32 (bf16 matmuls are slow on most CPUs)."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
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


class ChatTokenizer:
    """The LLM's tokenizer and chat template, without the weights (what data loaders need)."""

    def __init__(self, name_or_path: str, system: Optional[str] = None):
        from transformers import AutoTokenizer

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


class FrozenLLM:
    """An HF causal LM, frozen, with its ChatTokenizer (``.chat``)."""

    def __init__(self, name_or_path: str, dtype: str = "auto", system: Optional[str] = None,
                 attn_implementation: Optional[str] = "sdpa", gradient_checkpointing: bool = False,
                 device: str = "cpu"):
        from transformers import AutoModelForCausalLM

        self.name_or_path = name_or_path
        self.dtype_name = dtype
        self.chat = ChatTokenizer(name_or_path, system)
        device = torch.device(device)
        kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=pick_dtype(dtype, device), **kw)
        self.model.to(device).eval().requires_grad_(False)
        if gradient_checkpointing:  # recompute activations in backward: needed for 8B models on one GPU
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.fingerprint = fingerprint(self.model)
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

    # -- embedding and generation ----------------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids.to(self.device))

    @torch.no_grad()
    def generate_from_embeds(self, embeds: Sequence[torch.Tensor], max_new_tokens: int) -> List[str]:
        """Greedy replies for prompts given as embedding sequences (T_i, H), left-padded into one batch."""
        lengths = [e.shape[0] for e in embeds]
        width = max(lengths)
        batch = torch.zeros(len(embeds), width, self.hidden_size, dtype=self.dtype, device=self.device)
        mask = torch.zeros(len(embeds), width, dtype=torch.long, device=self.device)
        for i, e in enumerate(embeds):
            batch[i, width - e.shape[0]:] = e.to(self.dtype)
            mask[i, width - e.shape[0]:] = 1
        out = self.model.generate(inputs_embeds=batch, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, num_beams=1, pad_token_id=self.chat.pad_id,
                                  eos_token_id=self.chat.stop_ids, top_p=None, top_k=None, temperature=None)
        return self.chat.decode(out.tolist())

    @torch.no_grad()
    def generate_from_text(self, users: Sequence[str], max_new_tokens: int) -> List[str]:
        """Greedy replies to text-only user turns (the teacher)."""
        embeds = [self.embed(torch.tensor(self.chat.encode(self.chat.render(u)))) for u in users]
        return self.generate_from_embeds(embeds, max_new_tokens)
