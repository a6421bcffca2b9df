"""ParaAlign model: speech -> frontend -> encoder -> adapter -> token embeddings in a frozen LLM's chat turn.

Trainable: the adapter, the encoder, the frontend's layer weights (and its upstream if unfrozen).
Frozen and *not a submodule*: the LLM. It therefore has no optimizer state, is absent from
``state_dict()`` (checkpoints hold the trainable parts and the LLM's fingerprint only), and stays in
eval mode when the Trainer calls ``model.train()``. Device moves are forwarded to it; dtype casts are
not (it keeps its own dtype, bf16 on GPUs that support it).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_ext.palign.llm import FrozenLLM
from espnet_ext.palign.losses import LOSSES

IGNORE = -32768  # int pad value of the collate function


class SpeechAdapter(torch.nn.Module):
    """Concatenate ``stack`` consecutive encoder frames (downsampling by ``stack``) and project them to the
    LLM's embedding width with a two-layer MLP, as in the reference paper's adapter."""

    def __init__(self, input_size: int, output_size: int, stack: int = 2, hidden_size: int = 1024):
        super().__init__()
        self.stack = stack
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(input_size * stack, hidden_size), torch.nn.GELU(), torch.nn.Linear(hidden_size, output_size))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        pad = (-t) % self.stack
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        x = x.reshape(b, (t + pad) // self.stack, d * self.stack)
        return self.mlp(x), torch.div(lengths + self.stack - 1, self.stack, rounding_mode="floor")


def _fingerprint_tensor(hexdigest: str) -> torch.Tensor:
    """First 160 bits of the fingerprint as 20 bytes stored in floats, which survive dtype casts and
    ESPnet's n-best averaging (the mean of equal small integers is exact)."""
    return torch.tensor(list(bytes.fromhex(hexdigest[:40])), dtype=torch.float32)


class ParaAlignModel(AbsESPnetModel):
    def __init__(
        self,
        frontend: Optional[AbsFrontend],
        specaug: Optional[AbsSpecAug],
        normalize: Optional[AbsNormalize],
        encoder: AbsEncoder,
        adapter: SpeechAdapter,
        llm: FrozenLLM,
        prompts: Dict[str, str],
        loss: str = "ce",
        loss_conf: Optional[dict] = None,
        freeze_frontend: bool = True,
    ):
        super().__init__()
        self.frontend, self.specaug, self.normalize = frontend, specaug, normalize
        self.encoder, self.adapter = encoder, adapter
        object.__setattr__(self, "llm", llm)  # hidden from parameters(), state_dict() and train()
        self.freeze_frontend = freeze_frontend
        if frontend is not None and freeze_frontend and hasattr(frontend, "upstream"):
            frontend.upstream.requires_grad_(False)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}' (known: {sorted(LOSSES)})")
        self.loss_fn = LOSSES[loss](**(loss_conf or {}))
        self.tasks = sorted(prompts)
        for task, user in prompts.items():  # chat-template ids around the speech, one pair per task
            p = llm.chat.speech_prompt(user)
            self.register_buffer(f"prefix_{task}", torch.tensor(p.prefix, dtype=torch.long), persistent=False)
            self.register_buffer(f"suffix_{task}", torch.tensor(p.suffix, dtype=torch.long), persistent=False)
        self.register_buffer("llm_fingerprint", _fingerprint_tensor(llm.fingerprint))

    # -- keeping the LLM frozen and out of checkpoints -------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        self.llm.to(self.llm_fingerprint.device)  # follow device moves, keep the LLM's dtype
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frontend is not None and self.freeze_frontend and hasattr(self.frontend, "upstream"):
            self.frontend.upstream.eval()  # a frozen SSL model keeps dropout off
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "llm_fingerprint"
        if key in state_dict:
            saved = torch.round(state_dict[key].float().cpu())
            if not torch.equal(saved, self.llm_fingerprint.cpu()):
                raise ValueError(
                    f"this checkpoint was aligned to another LLM: its fingerprint is "
                    f"{bytes(saved.long().tolist()).hex()}, the loaded LLM '{self.llm.name_or_path}' has "
                    f"{self.llm.fingerprint[:40]}. Load the LLM the encoder was trained with.")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- speech to LLM embeddings ----------------------------------------------------------------------
    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Speech (B, T) -> LLM-width embeddings (B, S, H) at ~12.5 tokens/s, and their lengths."""
        feats, lengths = self._extract_feats(speech, speech_lengths)
        if self.specaug is not None and self.training:
            feats, lengths = self.specaug(feats, lengths)
        if self.normalize is not None:
            feats, lengths = self.normalize(feats, lengths)
        enc, enc_lengths, _ = self.encoder(feats, lengths)
        return self.adapter(enc, enc_lengths)

    def _extract_feats(self, speech, speech_lengths):
        speech = speech[:, : speech_lengths.max()]
        if self.frontend is None:  # features were dumped by stage 3
            return speech, speech_lengths
        return self.frontend(speech, speech_lengths)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs) -> Dict[str, torch.Tensor]:
        feats, lengths = self._extract_feats(speech, speech_lengths)
        return {"feats": feats, "feats_lengths": lengths}

    def splice(self, task: str, speech: torch.Tensor, speech_lengths: torch.Tensor,
               reply: Optional[torch.Tensor] = None, reply_lengths: Optional[torch.Tensor] = None):
        """Right-padded LLM inputs [prefix | speech | suffix | reply] per item, with attention mask and the
        index (in the flattened batch) of each position whose next token is a reply token."""
        prefix, suffix = getattr(self, f"prefix_{task}"), getattr(self, f"suffix_{task}")
        dtype = self.llm.dtype
        pre, suf = self.llm.embed(prefix).to(dtype), self.llm.embed(suffix).to(dtype)
        if reply is not None:
            reply_emb = self.llm.embed(reply.clamp(min=0)).to(dtype)
        rows, predict_at = [], []
        for i in range(speech.shape[0]):
            parts = [pre, speech[i, : speech_lengths[i]].to(dtype), suf]
            if reply is not None:
                parts.append(reply_emb[i, : reply_lengths[i]])
            rows.append(torch.cat(parts))
        width = max(r.shape[0] for r in rows)
        inputs = speech.new_zeros(len(rows), width, pre.shape[-1], dtype=dtype)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=speech.device)
        for i, r in enumerate(rows):
            inputs[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = 1
            if reply is not None:
                start = len(prefix) + int(speech_lengths[i]) + len(suffix)
                predict_at.append(i * width + torch.arange(start - 1, start - 1 + int(reply_lengths[i])))
        index = torch.cat(predict_at).to(speech.device) if predict_at else None
        return inputs, mask, index

    def reply_logits(self, inputs: torch.Tensor, mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """LLM logits at the reply positions only: (N, V) in fp32. The LM head runs on N rows, not B*T."""
        hidden = self.llm.model.base_model(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
        return self.llm.model.get_output_embeddings()(hidden).float()

    # -- training --------------------------------------------------------------------------------------
    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        emb, emb_lengths = self.encode(speech, speech_lengths)
        batch_size = speech.shape[0]
        stats: Dict[str, torch.Tensor] = {}
        total = 0.0
        tasks = [t for t in self.tasks if t in kwargs]
        if not tasks:
            raise ValueError(f"no target field in the batch: expected one of {self.tasks}, got {sorted(kwargs)}")
        for task in tasks:
            reply, reply_lengths = kwargs[task], kwargs[f"{task}_lengths"]
            inputs, mask, index = self.splice(task, emb, emb_lengths, reply, reply_lengths)
            logits = self.reply_logits(inputs, mask, index)
            target = torch.cat([reply[i, : reply_lengths[i]] for i in range(batch_size)])
            teacher = kwargs.get(f"{task}_teacher_logits")
            loss = self.loss_fn(logits, target, teacher)
            total = total + loss
            with torch.no_grad():
                stats[f"loss_{task}" if len(tasks) > 1 else "loss_ce"] = loss.detach()
                stats[f"acc_{task}" if len(tasks) > 1 else "acc"] = (logits.argmax(-1) == target).float().mean()
        loss = total / len(tasks)
        stats["loss"] = loss.detach()
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    # -- inference -------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, speech: torch.Tensor, speech_lengths: torch.Tensor, task: str = "response",
                 user: Optional[str] = None, max_new_tokens: int = 64) -> List[str]:
        """Greedy replies from speech. ``user`` (with <speech>) replaces the task's prompt, e.g. to ask
        "<speech>\\nWhat emotion do you hear?"."""
        emb, emb_lengths = self.encode(speech, speech_lengths)
        if user is not None:
            p = self.llm.chat.speech_prompt(user)
            pre, suf = (self.llm.embed(torch.tensor(x, device=emb.device)) for x in (p.prefix, p.suffix))
        else:
            pre, suf = (self.llm.embed(getattr(self, f"{n}_{task}")) for n in ("prefix", "suffix"))
        dtype = self.llm.dtype
        prompts = [torch.cat([pre.to(dtype), emb[i, : emb_lengths[i]].to(dtype), suf.to(dtype)])
                   for i in range(emb.shape[0])]
        return self.llm.generate_from_embeds(prompts, max_new_tokens)

    @torch.no_grad()
    def pooled_speech_tokens(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> torch.Tensor:
        """Mean of each utterance's speech-token embeddings (B, H), for linear probes."""
        emb, lengths = self.encode(speech, speech_lengths)
        mask = (torch.arange(emb.shape[1], device=emb.device)[None] < lengths[:, None]).to(emb.dtype)
        return (emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
