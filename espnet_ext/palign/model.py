"""ParaAlign model: speech -> frontend -> encoder -> adapter -> token embeddings in a frozen LLM's chat turn.

Trainable: the adapter, the encoder, the frontend's layer weights (and its upstream if unfrozen).
Frozen and *not a submodule*: the LLM. It therefore has no optimizer state, is absent from
``state_dict()`` (checkpoints hold the trainable parts and the LLM's fingerprint only), and stays in
eval mode when the Trainer calls ``model.train()``. Device moves are forwarded to it; dtype casts are
not (it keeps its own dtype, bf16 on GPUs that support it).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from espnet2.asr.encoder.abs_encoder import AbsEncoder
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from espnet2.asr.preencoder.abs_preencoder import AbsPreEncoder
from espnet2.asr.specaug.abs_specaug import AbsSpecAug
from espnet2.layers.abs_normalize import AbsNormalize
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2.train.abs_espnet_model import AbsESPnetModel

from espnet_ext.palign.llm import FrozenLLM, fingerprint
from espnet_ext.palign.losses import LOSSES
from espnet_ext.palign.prompts import reads_text
from espnet_ext.palign.sampler import TaskSampler

IGNORE = -32768  # int pad value of the collate function


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[int]]:
    """Best-path CTC decoding of (B, T, V) scores: ids with repeats merged and blanks (0) dropped."""
    out = []
    for row, n in zip(log_probs.argmax(-1).tolist(), lengths.tolist()):
        out.append([t for i, t in enumerate(row[:n]) if t != 0 and (i == 0 or t != row[i - 1])])
    return out


class VocabCTC(torch.nn.Module):
    """CTC over the frozen LLM's own vocabulary, scored on the speech tokens (beyond the paper).

    The classes are the LLM's input embeddings (class k+1 = token k, 0 = a learnt blank): a speech token
    scores high for a word when it lies close to that word's embedding, so learning to transcribe
    pulls the speech tokens towards the text embeddings that the frozen LLM already reads. It needs no
    LLM pass, so stage 6 can pre-train with it at the encoder's cost. In training the softmax runs over
    the batch's own tokens and ``negatives`` random others (a sampled softmax: ~20x cheaper than 49k
    classes); 0 = the whole vocabulary."""

    def __init__(self, hidden_size: int, negatives: int = 2048):
        super().__init__()
        self.blank = torch.nn.Linear(hidden_size, 1)
        self.negatives = negatives
        self.ctc_loss = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)

    def logits(self, emb: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.blank(emb), emb @ table.to(emb.dtype).t()], -1)

    def forward(self, emb, emb_lengths, table, target, target_lengths) -> torch.Tensor:
        """Mean loss per target token (on the scale of the alignment's per-token loss)."""
        flat = torch.cat([target[i, :n] for i, n in enumerate(target_lengths.tolist())])
        if self.negatives and table.shape[0] > flat.numel() + self.negatives:
            sample = torch.randint(0, table.shape[0], (self.negatives,), device=flat.device)
            classes = torch.unique(torch.cat([flat, sample]))  # sorted
            table, flat = table[classes], torch.searchsorted(classes, flat)
        logp = self.logits(emb, table).float().log_softmax(-1).transpose(0, 1)
        return self.ctc_loss(logp, flat + 1, emb_lengths, target_lengths) / target_lengths.sum().clamp(min=1)


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


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over time of (B, T, D) frames, counting only the first ``lengths[i]`` frames of row i."""
    mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).to(x.dtype)
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


def _known_keys(name: str, conf: dict, known: tuple) -> None:
    """Refuse a key no one reads: a misspelt or unparsed option (``{weight:1.0}`` is the key "weight:1.0" in
    YAML, which wants a space after the colon) must not leave the default in force unnoticed."""
    unknown = sorted(map(str, set(conf) - set(known)))
    if unknown:
        hint = "; a YAML mapping needs a space after ':'" if any(":" in str(k) for k in unknown) else ""
        raise ValueError(f"{name}: unknown key(s) {unknown} (known: {', '.join(known)}){hint}")


def _fingerprint_tensor(hexdigest: str) -> torch.Tensor:
    """First 160 bits of the fingerprint as 20 bytes stored in floats, which survive dtype casts and
    ESPnet's n-best averaging (the mean of equal small integers is exact)."""
    return torch.tensor(list(bytes.fromhex(hexdigest[:40])), dtype=torch.float32)


FROZEN_UPSTREAM = "frontend.upstream."


def _drop_frozen_upstream(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + FROZEN_UPSTREAM)]:
        del state_dict[key]


def _frozen_upstream_is_not_missing(module, incompatible_keys):
    incompatible_keys.missing_keys[:] = [k for k in incompatible_keys.missing_keys if FROZEN_UPSTREAM not in k]


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
        task_ratios: Optional[Dict[str, float]] = None,
        task_weights: Optional[Dict[str, float]] = None,
        max_target_tokens: int = 0,
        aux_conf: Optional[dict] = None,
        speaker_norm: bool = False,
        speaker_norm_dropout: float = 0.0,
        cache_prefix: bool = True,
        ctc_conf: Optional[dict] = None,
        encoder_only: bool = False,
        preencoder: Optional[AbsPreEncoder] = None,
    ):
        super().__init__()
        self.frontend, self.specaug, self.normalize = frontend, specaug, normalize
        self.preencoder = preencoder  # e.g. a linear projection of 1024-dim SSL features (ESPnet's SSL recipes)
        self.encoder, self.adapter = encoder, adapter
        object.__setattr__(self, "llm", llm)  # hidden from parameters(), state_dict() and train()
        self.freeze_frontend = freeze_frontend
        if frontend is not None and freeze_frontend and hasattr(frontend, "upstream"):
            frontend.upstream.requires_grad_(False)
            # The frozen SSL model (WavLM-Large: ~1.2 GB in every epoch file) stays out of checkpoints as the
            # LLM does: the config rebuilds it from its own checkpoint; its fingerprint is saved and checked.
            self.register_buffer("ssl_fingerprint", _fingerprint_tensor(fingerprint(frontend.upstream)))
            self.register_state_dict_post_hook(_drop_frozen_upstream)
            self.register_load_state_dict_post_hook(_frozen_upstream_is_not_missing)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}' (known: {sorted(LOSSES)})")
        self.loss_fn = LOSSES[loss](**(loss_conf or {}))
        self.tasks = sorted(prompts)
        self.student_prompts = dict(prompts)
        # Tasks whose student turn gives the transcript too ({text}, beyond the paper): their ids after the
        # speech differ per row and come with the batch (``<task>_suffix``) or with ``answer(texts=...)``.
        self.text_tasks = {t for t, user in prompts.items() if reads_text(user)}
        self.sampler = TaskSampler(self.tasks, task_ratios, task_weights)  # global RNG: resumable
        for task, user in prompts.items():  # chat-template ids around the speech, one pair per task
            p = llm.chat.speech_prompt(user)
            self.register_buffer(f"prefix_{task}", torch.tensor(p.prefix, dtype=torch.long), persistent=False)
            self.register_buffer(f"suffix_{task}", torch.tensor(p.suffix, dtype=torch.long), persistent=False)
        self.register_buffer("llm_fingerprint", _fingerprint_tensor(llm.fingerprint))
        self.max_target_tokens = max_target_tokens  # > 0: learn only the first N tokens of each target
        self.cache_prefix = cache_prefix
        self.speaker_norm = speaker_norm
        # speaker_norm_dropout: the share of training rows normalised by the training voices' average instead of
        # their own speaker's mean; then one file with no speaker statistics (the demo, --wav) is understood
        # too: it is normalised by that average (a running mean of the speaker means seen in training).
        self.speaker_norm_dropout = float(speaker_norm_dropout)
        if not 0.0 <= self.speaker_norm_dropout <= 1.0:
            raise ValueError(f"speaker_norm_dropout must be in [0, 1], got {speaker_norm_dropout}")
        if self.speaker_norm_dropout > 0:
            if not speaker_norm or frontend is None:
                raise ValueError("speaker_norm_dropout needs speaker_norm: true and a frontend")
            self.register_buffer("average_speaker_mean", torch.zeros(frontend.output_size()))
            self.register_buffer("speaker_means_seen", torch.zeros(()))  # rows averaged into it
        aux_conf = dict(aux_conf or {})
        _known_keys("aux_conf", aux_conf, ("weight", "labels"))
        _known_keys("ctc_conf", ctc_conf or {}, ("weight", "negatives"))
        self.aux_weight = float(aux_conf.get("weight", 0.0))
        self.aux_labels = [str(x) for x in aux_conf.get("labels", [])]
        self.aux_head = None
        if self.aux_weight > 0:  # an emotion classifier on the pooled encoder output (beyond the paper)
            if len(self.aux_labels) < 2:
                raise ValueError("aux_conf.labels must list the emotion labels (>= 2) when aux_conf.weight > 0")
            self.aux_head = torch.nn.Linear(encoder.output_size(), len(self.aux_labels))
        # CTC on the transcript's LLM tokens from the speech tokens (see VocabCTC)
        self.ctc_weight = float((ctc_conf or {}).get("weight", 0.0))
        self.ctc = (VocabCTC(llm.hidden_size, int((ctc_conf or {}).get("negatives", 2048)))
                    if self.ctc_weight > 0 else None)
        # encoder_only: the encoder pre-training of stage 6, no LLM pass (only the CTC and aux losses)
        self.encoder_only = encoder_only
        if encoder_only and self.ctc is None and self.aux_head is None:
            raise ValueError("encoder_only training needs ctc_conf.weight > 0 or aux_conf.weight > 0")

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
        key = prefix + "ssl_fingerprint"
        if key in state_dict and hasattr(self, "ssl_fingerprint"):
            if not torch.equal(torch.round(state_dict[key].float().cpu()), self.ssl_fingerprint.cpu()):
                raise ValueError("this checkpoint was trained with other SSL frontend weights than the ones the "
                                 "config loads (their fingerprints differ): point frontend_conf at the same "
                                 "upstream checkpoint the encoder was trained with")
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
    def encode(self, speech: torch.Tensor, speech_lengths: torch.Tensor, spk_mean: Optional[torch.Tensor] = None,
               return_encoder: bool = False):
        """Speech (B, T) -> LLM-width embeddings (B, S, H) at ~12.5 tokens/s, and their lengths (and, with
        ``return_encoder``, the encoder output and its lengths, for the auxiliary classifier)."""
        feats, lengths = self._extract_feats(speech, speech_lengths, spk_mean)
        if self.specaug is not None and self.training:
            feats, lengths = self.specaug(feats, lengths)
        if self.normalize is not None:
            feats, lengths = self.normalize(feats, lengths)
        if self.preencoder is not None:
            feats, lengths = self.preencoder(feats, lengths)
        enc, enc_lengths, _ = self.encoder(feats, lengths)
        emb, emb_lengths = self.adapter(enc, enc_lengths)
        return (emb, emb_lengths, enc, enc_lengths) if return_encoder else (emb, emb_lengths)

    def _extract_feats(self, speech, speech_lengths, spk_mean: Optional[torch.Tensor] = None):
        speech = speech[:, : speech_lengths.max()]
        if self.frontend is None or speech.dim() == 3:  # (B, T, D): the frontend's features, dumped by stage 3
            if self.frontend is not None and speech.shape[-1] != self.frontend.output_size():
                raise ValueError(f"the dumped features are {speech.shape[-1]}-dim, but this config's frontend gives "
                                 f"{self.frontend.output_size()}: stage 3 dumped them with another frontend_conf "
                                 "(rerun stage 3 with this config; palign.sh keeps one dump dir per frontend_conf)")
            feats, lengths = speech, speech_lengths
        else:
            feats, lengths = self.frontend(speech, speech_lengths)
        if self.speaker_norm:
            # Per-speaker mean subtraction (Kaldi's per-speaker CMN): the emotion is what differs from the
            # speaker's usual level, pitch and timbre. Without a speaker mean (one file): the training voices'
            # average if the model learnt to use it (speaker_norm_dropout), else the utterance's own mean.
            if spk_mean is None:
                spk_mean = (self.average_speaker_mean.expand(feats.shape[0], -1) if self.speaker_norm_dropout > 0
                            else masked_mean(feats, lengths))
            elif self.speaker_norm_dropout > 0 and self.training:
                spk_mean = self._drop_speaker_means(spk_mean.to(self.average_speaker_mean.dtype))
            valid = (torch.arange(feats.shape[1], device=feats.device)[None] < lengths[:, None])[..., None]
            feats = (feats - spk_mean.to(feats.dtype)[:, None, :]) * valid
        return feats, lengths

    @torch.no_grad()
    def _drop_speaker_means(self, spk_mean: torch.Tensor) -> torch.Tensor:
        """Update the running average of the speaker means, and put it in place of a random share of rows."""
        n = spk_mean.shape[0]
        self.speaker_means_seen += n
        self.average_speaker_mean += (spk_mean.sum(0) - n * self.average_speaker_mean) / self.speaker_means_seen
        drop = torch.rand(n, device=spk_mean.device) < self.speaker_norm_dropout
        return torch.where(drop[:, None], self.average_speaker_mean.expand_as(spk_mean), spk_mean)

    def collect_feats(self, speech: torch.Tensor, speech_lengths: torch.Tensor, spk_mean=None,
                      **kwargs) -> Dict[str, torch.Tensor]:
        feats, lengths = self._extract_feats(speech, speech_lengths, spk_mean)
        return {"feats": feats, "feats_lengths": lengths}

    @staticmethod
    def pack(rows: List[List[torch.Tensor]], reply_lengths: Sequence[int], dtype: torch.dtype):
        """Right-pad rows of embedding pieces into one batch. Each row ends with its reply of
        ``reply_lengths[i]`` tokens; returns inputs, attention mask and the flat index of every position
        whose next token is a reply token (only those positions are scored: padding never is)."""
        seqs = [torch.cat([p.to(dtype) for p in parts]) for parts in rows]
        width = max(x.shape[0] for x in seqs)
        inputs = seqs[0].new_zeros(len(seqs), width, seqs[0].shape[-1])
        mask = torch.zeros(len(seqs), width, dtype=torch.long, device=seqs[0].device)
        index = []
        for i, (x, n) in enumerate(zip(seqs, reply_lengths)):
            inputs[i, : x.shape[0]] = x
            mask[i, : x.shape[0]] = 1
            start = x.shape[0] - int(n)
            index.append(i * width + torch.arange(start - 1, x.shape[0] - 1))
        return inputs, mask, torch.cat(index).to(inputs.device)

    def shared_prefix(self, tasks: Sequence[str]) -> Optional[List[int]]:
        """The prefix ids of these tasks' prompts if they are all the same (then it comes from the LLM's
        prefix cache), else None. The recipes' prompts all put the speech first in the user turn."""
        if not self.cache_prefix:
            return None
        prefixes = {tuple(getattr(self, f"prefix_{t}").tolist()) for t in set(tasks)}
        return list(prefixes.pop()) if len(prefixes) == 1 else None

    def splice(self, tasks: Union[str, Sequence[str]], speech: torch.Tensor, speech_lengths: torch.Tensor,
               reply: torch.Tensor, reply_lengths: torch.Tensor,
               suffixes: Optional[Sequence[Optional[torch.Tensor]]] = None):
        """LLM inputs [prefix | speech | suffix | reply] per row, the prompt of each row's task (or the row's
        own suffix ids in ``suffixes``, for a task whose turn holds the transcript). Returns inputs, mask,
        reply index and the shared prefix ids: when every row has the same prefix it is left out of the
        inputs and taken from the cache."""
        if isinstance(tasks, str):
            tasks = [tasks] * speech.shape[0]
        shared = self.shared_prefix(tasks)
        embeds = {t: ([] if shared is not None else [self.llm.embed(getattr(self, f"prefix_{t}"))],
                      self.llm.embed(getattr(self, f"suffix_{t}"))) for t in set(tasks)}
        reply_emb = self.llm.embed(reply.clamp(min=0))
        suffixes = suffixes or [None] * len(tasks)
        rows = [embeds[t][0] + [speech[i, : speech_lengths[i]],
                                embeds[t][1] if suffixes[i] is None else self.llm.embed(suffixes[i]),
                                reply_emb[i, : reply_lengths[i]]]
                for i, t in enumerate(tasks)]
        return (*self.pack(rows, reply_lengths.tolist(), self.llm.dtype), shared)

    def reply_logits(self, inputs: torch.Tensor, mask: torch.Tensor, index: torch.Tensor,
                     prefix: Optional[Sequence[int]] = None) -> torch.Tensor:
        """LLM logits at the reply positions only: (N, V) in fp32. The LM head runs on N rows, not B*T."""
        hidden = self.llm.hidden_states(inputs, mask, prefix)
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, index)
        return self.llm.model.get_output_embeddings()(hidden).float()

    @torch.no_grad()
    def teacher_logits(self, prompts: List[torch.Tensor], reply: torch.Tensor, reply_lengths: torch.Tensor):
        """The frozen LLM's logits over each reply given the *text* teacher prompt (token ids of the whole
        rendered chat turn): the distributions the KL loss pulls the speech-prompted student towards."""
        rows = [[self.llm.embed(p), self.llm.embed(reply[i, : reply_lengths[i]].clamp(min=0))]
                for i, p in enumerate(prompts)]
        return self.reply_logits(*self.pack(rows, reply_lengths.tolist(), self.llm.dtype))

    # -- training --------------------------------------------------------------------------------------
    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, spk_mean: Optional[torch.Tensor] = None,
                emotion_label: Optional[torch.Tensor] = None, transcript: Optional[torch.Tensor] = None,
                transcript_lengths: Optional[torch.Tensor] = None, **kwargs
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """One LLM pass per batch: each row is assigned one task (by the sampler's ratios, among the tasks
        whose targets are in the batch); the loss is the weighted mean of the per-task token losses, plus
        ``aux_conf.weight`` times the auxiliary emotion classifier's loss and ``ctc_conf.weight`` times the
        transcript CTC loss when they are on. ``encoder_only`` skips the LLM pass."""
        kwargs.pop("spk_mean_lengths", None)
        kwargs.pop("emotion_label_lengths", None)
        batch_size = speech.shape[0]
        emb, emb_lengths, enc, enc_lengths = self.encode(speech, speech_lengths, spk_mean, return_encoder=True)
        stats: Dict[str, torch.Tensor] = {}
        loss = 0.0 if self.encoder_only else self._alignment_loss(emb, emb_lengths, kwargs, stats)
        if not self.encoder_only:
            stats["loss_align"] = loss.detach()
        if self.aux_head is not None:
            if emotion_label is None:
                raise ValueError("aux_conf.weight > 0 needs the 'emotion_label' field in the data (utt2emo)")
            aux_logits = self.aux_head(masked_mean(enc, enc_lengths))
            labels = emotion_label.reshape(batch_size, -1)[:, 0]
            aux_loss = F.cross_entropy(aux_logits, labels)
            stats["loss_aux"] = aux_loss.detach()
            stats["acc_aux"] = (aux_logits.argmax(-1) == labels).float().mean()
            loss = loss + self.aux_weight * aux_loss
        if self.ctc is not None:
            if transcript is None:
                raise ValueError("ctc_conf.weight > 0 needs the 'transcript' field in the data (the text file)")
            table = self.llm.model.get_input_embeddings().weight
            ctc_loss = self.ctc(emb, emb_lengths, table, transcript, transcript_lengths)
            stats["loss_ctc"] = ctc_loss.detach()
            loss = loss + self.ctc_weight * ctc_loss
        stats["loss"] = loss.detach()
        loss, stats, weight = force_gatherable((loss, stats, batch_size), loss.device)
        return loss, stats, weight

    def _alignment_loss(self, emb: torch.Tensor, emb_lengths: torch.Tensor, targets: Dict[str, torch.Tensor],
                        stats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The frozen LLM's loss on the teacher replies, given the speech tokens ``emb`` (per-task stats)."""
        available = [t for t in self.tasks if t in targets]
        if not available:
            raise ValueError(f"no target field in the batch: expected one of {self.tasks}, got {sorted(targets)}")
        batch_size = emb.shape[0]
        row_tasks = self.sampler.sample(batch_size, available)
        width = max(targets[t].shape[1] for t in available)
        reply = torch.full((batch_size, width), IGNORE, dtype=torch.long, device=emb.device)
        reply_lengths = torch.zeros(batch_size, dtype=torch.long, device=emb.device)
        for i, t in enumerate(row_tasks):
            n = int(targets[f"{t}_lengths"][i])
            if self.max_target_tokens > 0:
                n = min(n, self.max_target_tokens)
            reply[i, :n], reply_lengths[i] = targets[t][i, :n], n
        suffixes = []
        for i, t in enumerate(row_tasks):
            if t not in self.text_tasks:
                suffixes.append(None)
            elif f"{t}_suffix" not in targets:
                raise ValueError(f"the student prompt of task '{t}' reads the transcript ({{text}}): the data needs "
                                 f"the 'transcript' field (the text file)")
            else:
                suffixes.append(targets[f"{t}_suffix"][i, : targets[f"{t}_suffix_lengths"][i]])
        inputs, mask, index, prefix = self.splice(row_tasks, emb, emb_lengths, reply, reply_lengths, suffixes)
        logits = self.reply_logits(inputs, mask, index, prefix)
        target = torch.cat([reply[i, : reply_lengths[i]] for i in range(batch_size)])
        teacher = None
        if self.loss_fn.needs_teacher:
            prompts = []
            for i, t in enumerate(row_tasks):
                if f"{t}_prompt" not in targets:
                    raise ValueError(f"the {type(self.loss_fn).__name__} loss needs the teacher prompts "
                                     f"'{t}_prompt' in the data (stage 4 writes them)")
                prompts.append(targets[f"{t}_prompt"][i, : targets[f"{t}_prompt_lengths"][i]])
            teacher = self.teacher_logits(prompts, reply, reply_lengths)
        token_task = [t for i, t in enumerate(row_tasks) for _ in range(int(reply_lengths[i]))]
        loss, total_weight = 0.0, 0.0
        for t in sorted(set(row_tasks)):
            sel = torch.tensor([x == t for x in token_task], device=logits.device)
            task_loss = self.loss_fn(logits[sel], target[sel], None if teacher is None else teacher[sel])
            weight = self.sampler.weight(t)
            loss, total_weight = loss + weight * task_loss, total_weight + weight
            with torch.no_grad():
                stats[f"loss_{t}"] = task_loss.detach()
                stats[f"acc_{t}"] = (logits[sel].argmax(-1) == target[sel]).float().mean()
        return loss / total_weight

    # -- inference -------------------------------------------------------------------------------------
    def prompt_ids(self, task: str = "response", user: Optional[str] = None,
                   texts: Optional[Sequence[str]] = None) -> Tuple[List[int], List[List[int]]]:
        """Prefix ids before the speech and the suffix ids after it: ``user`` (with <speech>) or the task's
        student prompt. One suffix shared by every row, or, for a turn with ``{text}``, one per row of ``texts``."""
        template = user if user is not None else self.student_prompts.get(task, "")
        if reads_text(template):
            if texts is None:
                raise ValueError(f"the prompt {template!r} reads the transcript ({{text}}): give the transcripts "
                                 f"(palign_inference --transcripts, or the data dir's text file)")
            chat = self.llm.chat
            return chat.speech_prompt(template).prefix, [chat.student_suffix(template, t) for t in texts]
        if user is not None:
            p = self.llm.chat.speech_prompt(user)
            prefix, suffix = p.prefix, p.suffix
        else:
            prefix, suffix = getattr(self, f"prefix_{task}").tolist(), getattr(self, f"suffix_{task}").tolist()
        return prefix, [suffix]

    @torch.no_grad()
    def answer(self, speech: torch.Tensor, speech_lengths: torch.Tensor, questions: Dict[str, Tuple[str, Optional[str]]],
               max_new_tokens: int = 64, spk_mean: Optional[torch.Tensor] = None,
               text_users: Optional[Dict[str, List[str]]] = None,
               alone_questions: Optional[Dict[str, Tuple[str, Optional[str]]]] = None,
               texts: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
        """Greedy replies to several questions about the same speech, encoded once. ``questions`` maps a
        name to (task, user): the task's student prompt, or ``user`` (with <speech>) when it is given.
        ``alone_questions``: more questions, asked of a second encoding without ``spk_mean`` (each file
        alone, as the demo hears it), in the same batched generate. ``text_users``: see ``answer_tokens``.
        ``texts``: each utterance's transcript, for prompts that read it ({text})."""
        asked = [(*self.encode(speech, speech_lengths, spk_mean), questions)]
        if alone_questions:
            asked.append((*self.encode(speech, speech_lengths, None), alone_questions))
        return self.answer_tokens(asked, max_new_tokens, text_users, texts)

    @torch.no_grad()
    def answer_tokens(self, asked: List[Tuple[torch.Tensor, torch.Tensor, Dict[str, Tuple[str, Optional[str]]]]],
                      max_new_tokens: int = 64, text_users: Optional[Dict[str, List[str]]] = None,
                      texts: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
        """Greedy replies to questions about speech already encoded: ``asked`` lists (speech tokens (B, S, H),
        their lengths, questions as in ``answer``). ``text_users`` maps more names to text-only user turns
        (one per utterance), e.g. a transcript-only baseline. Every prompt that starts with the same prefix
        (system turn, user-turn header) goes into one batched generate with that prefix from the LLM's cache
        (one pass per token for all of them; on a 2-core CPU the cost still grows about linearly with the
        rows, on a GPU it barely does)."""
        dtype = self.llm.dtype
        rows: List[Tuple[str, List[int], torch.Tensor]] = []  # (name, prefix ids, embeddings after the prefix)
        for emb, emb_lengths, questions in asked:
            for name, (task, user) in questions.items():
                if any(r[0] == name for r in rows):
                    raise ValueError(f"question '{name}' is asked twice")
                prefix, suffixes = self.prompt_ids(task, user, texts)
                suf = [self.llm.embed_ids(s) for s in suffixes]  # one shared, or one per row
                rows += [(name, prefix, torch.cat([emb[i, : emb_lengths[i]].to(dtype), suf[i if len(suf) > 1 else 0]]))
                         for i in range(emb.shape[0])]
        chat = self.llm.chat
        for name, users in (text_users or {}).items():
            for user in users:
                ids = chat.encode(chat.render(user))
                shared = next((r[1] for r in rows if r[1] and ids[: len(r[1])] == r[1]), [])
                rows.append((name, shared, self.llm.embed_ids(ids[len(shared):])))
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for k, (_, prefix, _) in enumerate(rows):
            groups.setdefault(tuple(prefix) if self.cache_prefix else (), []).append(k)
        replies: List[str] = [""] * len(rows)
        for prefix, members in groups.items():
            prompts = [rows[k][2] for k in members]
            if not prefix:  # no shared prefix to cache: each row's own prefix goes in as embeddings
                prompts = [torch.cat([self.llm.embed_ids(rows[k][1]), rows[k][2]]) if rows[k][1] else rows[k][2]
                           for k in members]
            for k, reply in zip(members, self.llm.generate_from_embeds(prompts, max_new_tokens, list(prefix) or None)):
                replies[k] = reply
        out: Dict[str, List[str]] = {}
        for (name, _, _), reply in zip(rows, replies):
            out.setdefault(name, []).append(reply)
        return out

    def generate(self, speech: torch.Tensor, speech_lengths: torch.Tensor, task: str = "response",
                 user: Optional[str] = None, max_new_tokens: int = 64,
                 spk_mean: Optional[torch.Tensor] = None, texts: Optional[Sequence[str]] = None) -> List[str]:
        """Greedy replies from speech. ``user`` (with <speech>) replaces the task's prompt, e.g. to ask
        "<speech>\\nWhat emotion do you hear?"."""
        return self.answer(speech, speech_lengths, {"reply": (task, user)}, max_new_tokens, spk_mean,
                           texts=texts)["reply"]

    @torch.no_grad()
    def pooled_speech_tokens(self, speech: torch.Tensor, speech_lengths: torch.Tensor,
                             spk_mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean of each utterance's speech-token embeddings (B, H), for linear probes."""
        emb, lengths = self.encode(speech, speech_lengths, spk_mean)
        return masked_mean(emb, lengths)
