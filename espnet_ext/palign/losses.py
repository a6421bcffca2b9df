"""Alignment losses on the reply tokens: (student logits (N, V), target ids (N,), teacher logits (N, V) or None)."""
from typing import Optional

import torch
import torch.nn.functional as F


class CrossEntropy(torch.nn.Module):
    """The reference paper's loss: cross-entropy on the teacher's reply tokens."""

    needs_teacher = False

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: Optional[torch.Tensor] = None):
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


class KLDistillation(torch.nn.Module):
    """KL(teacher || student) between the frozen LLM's token distributions given the text prompt and given
    the speech prompt, at a temperature, optionally mixed with cross-entropy (as in BLSP-Emo, Ultravox):
        loss = ce_weight * CE + (1 - ce_weight) * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    """

    needs_teacher = True

    def __init__(self, temperature: float = 1.0, ce_weight: float = 0.0):
        super().__init__()
        if temperature <= 0 or not 0.0 <= ce_weight <= 1.0:
            raise ValueError(f"need temperature > 0 and 0 <= ce_weight <= 1, got {temperature}, {ce_weight}")
        self.temperature, self.ce_weight = temperature, ce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: Optional[torch.Tensor] = None):
        if teacher is None:
            raise ValueError("the KL loss needs the teacher's logits")
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=-1), F.log_softmax(teacher.detach() / t, dim=-1),
                      log_target=True, reduction="batchmean") * t * t
        if self.ce_weight == 0.0:
            return kl
        return self.ce_weight * F.cross_entropy(logits, target) + (1 - self.ce_weight) * kl


LOSSES = {"ce": CrossEntropy, "kl": KLDistillation}
