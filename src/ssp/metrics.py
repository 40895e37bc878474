"""Figures over scores: precision/recall points, ROC-AUC and the choice of a decision threshold.

Pure functions over numpy arrays (gold labels 0/1, scores P(AI)); a text is called AI when its
score is at or over the threshold, as ``ssp classify`` does.

>>> points = precision_recall_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> [(round(p.threshold, 3), p.precision, p.recall) for p in points]
[(0.6, 1.0, 0.5), (0.375, 0.5, 0.5), (0.225, 0.6666666666666666, 1.0), (0.1, 0.5, 1.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

THRESHOLD_RULES = ("best_f1", "precision")
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdPoint:
    """What calling ``score >= threshold`` AI does on the labelled rows it was worked out on."""

    threshold: float
    precision: float
    recall: float
    f1: float
    predicted_ai: int
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def _checked(gold: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    gold = np.asarray(gold).astype(int).reshape(-1)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    if gold.shape != scores.shape:
        raise ValueError(f"{gold.shape[0]} gold labels but {scores.shape[0]} scores")
    if not np.isin(gold, [0, 1]).all():
        raise ValueError(f"gold labels must be 0 or 1, got {sorted(set(np.unique(gold).tolist()))}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite numbers")
    return gold, scores


def precision_recall_points(gold: Sequence[int], scores: Sequence[float]) -> list[ThresholdPoint]:
    """One point per distinct score, highest threshold first.

    A point's threshold lies halfway between its score and the next lower distinct score (the
    lowest score is its own threshold), so it does not sit on a labelled row's score and a
    slightly different score on new data falls on the same side.
    """
    gold, scores = _checked(gold, scores)
    if gold.size == 0:
        return []
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_gold = scores[order], gold[order]
    true_positives = np.cumsum(sorted_gold == 1)
    total_positive = int((gold == 1).sum())
    # the last row of each run of equal scores: all of them are called AI together
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    points = []
    for index in np.flatnonzero(last_of_run):
        called = int(index) + 1
        tp = int(true_positives[index])
        precision = tp / called
        recall = tp / total_positive if total_positive else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        score = float(sorted_scores[index])
        threshold = (score + float(sorted_scores[index + 1])) / 2 if index + 1 < len(sorted_scores) else score
        points.append(ThresholdPoint(threshold, precision, recall, f1, int(called), int(gold.size)))
    return points


def choose_threshold(gold: Sequence[int], scores: Sequence[float], rule: str = "best_f1",
                     target_precision: float = 0.9) -> tuple[ThresholdPoint, bool]:
    """The decision threshold by ``rule``, and whether the rule's aim was met.

    ``best_f1``: the threshold with the highest F1 (on a tie the highest such threshold, which
    calls fewer texts AI). ``precision``: the lowest threshold whose precision reaches
    ``target_precision`` (the most recall at that precision); when none does, the one with the
    best precision, and the second value is False.

    >>> gold, scores = [0, 0, 1, 0, 1, 1], [0.1, 0.3, 0.4, 0.6, 0.7, 0.9]
    >>> point, met = choose_threshold(gold, scores)
    >>> round(point.threshold, 3), round(point.f1, 3), met
    (0.35, 0.857, True)
    >>> point, met = choose_threshold(gold, scores, "precision", 1.0)
    >>> round(point.threshold, 3), point.precision, round(point.recall, 3), met
    (0.65, 1.0, 0.667, True)
    >>> choose_threshold([1, 0], [0.2, 0.8], "precision", 0.9)[1]
    False
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r} is unknown: expected one of {', '.join(THRESHOLD_RULES)}")
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    points = precision_recall_points(gold, scores)
    if not points:
        raise ValueError("no labelled rows to choose a threshold on")
    if rule == "best_f1":
        best = max(points, key=lambda p: p.f1)  # max keeps the first, i.e. highest, of equal F1s
        return best, bool(best.f1 > 0)
    reaching = [p for p in points if p.precision >= target_precision]
    if reaching:
        return reaching[-1], True
    return max(points, key=lambda p: p.precision), False


def roc_auc(gold: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (the chance a random AI text outscores a random other one; ties
    count half); None when only one class is present, where it is undefined.

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([1, 1], [0.2, 0.9]) is None
    True
    """
    gold = np.asarray(gold).astype(int)
    positive = gold == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = pd.Series(np.asarray(scores, dtype="float64")).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
