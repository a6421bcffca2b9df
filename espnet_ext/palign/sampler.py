"""Alignment tasks: which task each training row learns, and how much each task's loss weighs.

A task is (a student prompt with speech, a teacher prompt with text, a target): the prompts live in the
prompt YAML (``student:`` / ``teacher:``), the targets are data files written by stage 4. The sampler
gives every row of a batch one task, drawn with the configured ratios among the tasks whose targets are in
the batch, so a batch costs one LLM pass however many tasks are mixed.

Draws come from torch's global generator unless a seed is given: ESPnet's Trainer reseeds it at the start
of every epoch (``seed + epoch``), so a run resumed after a crash draws the same tasks as an uninterrupted
one. A private generator would restart from its seed on resume.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch


class TaskSampler:
    def __init__(self, tasks: Sequence[str], ratios: Optional[Dict[str, float]] = None,
                 weights: Optional[Dict[str, float]] = None, seed: Optional[int] = None):
        self.tasks = list(tasks)
        ratios = dict(ratios or {t: 1.0 for t in self.tasks})
        unknown = sorted(set(ratios) - set(self.tasks)) + sorted(set(weights or {}) - set(self.tasks))
        if unknown:
            raise ValueError(f"task ratios/weights for unknown task(s) {unknown}; tasks are {self.tasks}")
        if any(r < 0 for r in ratios.values()) or not any(ratios.get(t, 0) > 0 for t in self.tasks):
            raise ValueError(f"task ratios must be >= 0 with at least one > 0: {ratios}")
        self.ratios = {t: float(ratios.get(t, 0.0)) for t in self.tasks}
        self.weights = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def sample(self, n: int, available: Optional[Sequence[str]] = None) -> List[str]:
        """One task per row, drawn with the ratios (renormalised over ``available``)."""
        tasks = [t for t in self.tasks if available is None or t in available]
        probs = torch.tensor([self.ratios[t] for t in tasks])
        if probs.sum() <= 0:
            raise ValueError(f"none of the tasks in the batch ({tasks}) has a ratio > 0")
        draws = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=self.generator)
        return [tasks[i] for i in draws.tolist()]

    def weight(self, task: str) -> float:
        return self.weights[task]
