"""Alignment losses on the reply tokens: (student logits (N, V), target ids (N,), teacher logits or None)."""
from typing import Optional

import torch
import torch.nn.functional as F


class CrossEntropy(torch.nn.Module):
    """The reference paper's loss: cross-entropy on the teacher's reply tokens."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: Optional[torch.Tensor] = None):
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


LOSSES = {"ce": CrossEntropy}
