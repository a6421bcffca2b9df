"""Long recordings cut into pieces of at most ~15 s at pauses, each with its transcript, as Expresso's authors
cut the longform read passages and the conversations (within the split files' (start, end) ranges).

Offline and dependency-free: an energy voice-activity detector finds the pauses; the offline Whisper's word
timestamps place words in the pieces. Where the release has the passage's transcript, the pieces get the
*passage's* words (aligned to Whisper's by edit distance), not Whisper's; elsewhere Whisper's own words.
"""
from __future__ import annotations

import difflib
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from espnet_ext.audio import frame_db

Piece = Tuple[float, float]  # seconds, relative to the start of the audio given
Word = Tuple[str, float, float]


def speech_activity(x: np.ndarray, fs: int, hop_s: float = 0.01, win_s: float = 0.03,
                    below_peak_db: float = 35.0) -> np.ndarray:
    """One bool per ``hop_s`` frame: the frame's RMS is within ``below_peak_db`` of the loud frames' level
    (the 99th percentile), so quiet speech counts and pauses do not."""
    db = frame_db(x, int(win_s * fs), int(hop_s * fs))
    if len(db) == 0:
        return np.zeros(0, dtype=bool)
    return db > np.percentile(db, 99) - below_peak_db


def cut_at_pauses(active: np.ndarray, hop_s: float = 0.01, max_s: float = 15.0, min_pause_s: float = 0.2,
                  margin_s: float = 0.1) -> List[Piece]:
    """Pieces of at most ``max_s`` covering every speech region: regions closer than ``min_pause_s`` are one
    region; consecutive regions are packed into a piece while it stays within ``max_s``; a region longer
    than ``max_s`` alone is cut into equal parts. Each piece keeps ``margin_s`` of the pause around it."""
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return []
    regions: List[List[float]] = []
    for i in idx:
        t = i * hop_s
        if regions and t - regions[-1][1] < min_pause_s + hop_s:
            regions[-1][1] = t + hop_s
        else:
            regions.append([t, t + hop_s])
    spans: List[List[float]] = []
    for a, b in regions:
        if b - a > max_s:  # no pause to cut at: equal parts
            n = int(np.ceil((b - a) / max_s))
            spans += [[a + k * (b - a) / n, a + (k + 1) * (b - a) / n] for k in range(n)]
        elif spans and b - spans[-1][0] <= max_s - 2 * margin_s:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    total = len(active) * hop_s
    pieces = []
    for k, (a, b) in enumerate(spans):
        lo = max(a - margin_s, 0.0, (spans[k - 1][1] + a) / 2 if k else 0.0)
        hi = min(b + margin_s, total, (b + spans[k + 1][0]) / 2 if k + 1 < len(spans) else total)
        pieces.append((round(float(lo), 2), round(float(hi), 2)))
    return pieces


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


def words_per_piece(words: Sequence[Word], pieces: Sequence[Piece]) -> List[List[int]]:
    """Indices of the (Whisper) words whose middle falls in each piece."""
    out: List[List[int]] = [[] for _ in pieces]
    for i, (_, start, end) in enumerate(words):
        mid = (start + end) / 2
        k = next((k for k, (a, b) in enumerate(pieces) if a <= mid < b), None)
        if k is None:  # between pieces (a pause edge): the nearest piece
            k = int(np.argmin([min(abs(mid - a), abs(mid - b)) for a, b in pieces]))
        out[k].append(i)
    return out


def piece_transcripts(words: Sequence[Word], pieces: Sequence[Piece], passage: Optional[str] = None) -> List[str]:
    """A transcript for each piece: the passage's words aligned to the Whisper words of the piece, or (no
    passage) the Whisper words themselves. Passage words before the first and after the last aligned word
    lie outside the recording's range and go nowhere."""
    groups = words_per_piece(words, pieces)
    if passage is None:
        return [" ".join(words[i][0] for i in g).strip() for g in groups]
    ref = passage.split()
    matcher = difflib.SequenceMatcher(None, [_norm(w[0]) for w in words], [_norm(w) for w in ref], autojunk=False)
    to_ref = {}  # Whisper word index -> passage word index, where they match
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            to_ref[block.a + k] = block.b + k
    if not to_ref:
        return ["" for _ in pieces]
    matched = sorted(to_ref)

    def ref_index(i: int) -> int:
        """The passage position of Whisper word i: its match, else counted on from the previous match (a
        misheard word stands for one passage word), never past the next match."""
        if i in to_ref:
            return to_ref[i]
        earlier = [j for j in matched if j < i]
        later = [j for j in matched if j > i]
        if not earlier:
            return to_ref[later[0]]
        guess = to_ref[earlier[-1]] + (i - earlier[-1])
        return min(guess, to_ref[later[0]]) if later else guess

    first, last = to_ref[matched[0]], to_ref[matched[-1]] + 1
    bounds = []
    for g in groups:
        bounds.append(ref_index(g[0]) if g else None)
    out = []
    for k, g in enumerate(groups):
        if not g:
            out.append("")
            continue
        start = first if k == 0 or all(b is None for b in bounds[:k]) else max(first, bounds[k])
        nxt = next((b for b in bounds[k + 1:] if b is not None), last)
        out.append(" ".join(ref[start:min(nxt, last)]))
    return out
