"""The figures of one scorer (weak labels or a served model) on one labelled file.

Pure numpy over four parallel arrays: gold labels (1 AI, 0 not, -1 ambiguous: left out of every
figure), scores (P(AI)), predictions (0/1: what the scorer calls the post) and, optionally, kinds.
A post is called AI by a model when its score is at or over the threshold, as ``ssp classify``
does; weak labels pass their own predictions (a post no function voted on is called not AI).

>>> report = evaluate_scores(gold=[1, 1, 0, 0, -1], scores=[0.9, 0.3, 0.8, 0.1, 0.7],
...                          ids=["a", "b", "c", "d", "e"], kinds=["ai", "ai", "trap", "ordinary", "amb"],
...                          texts=["LLM", "epochs", "Ai Weiwei", "football", "robots"], threshold=0.5)
>>> o = report.overall
>>> (o.tp, o.fp, o.tn, o.fn), o.precision, o.recall, o.f1, o.fpr, o.accuracy
((1, 1, 1, 1), 0.5, 0.5, 0.5, 0.5, 0.5)
>>> [(k.kind, k.n, k.called_ai, k.share_called_ai, k.recall) for k in report.per_kind]
[('ai', 2, 1, 0.5, 0.5), ('ordinary', 1, 0, 0.0, None), ('trap', 1, 1, 1.0, None)]
>>> [(e.id, e.score) for e in report.false_positives], [(e.id, e.score) for e in report.false_negatives]
([('c', 0.8)], [('b', 0.3)])
>>> report.skipped, round(report.average_precision, 3)
(1, 0.833)
>>> report.line()
'model on gold: 4 posts (1 ambiguous left out), F1 0.500 (precision 0.500, recall 0.500), FPR 0.500, AP 0.833, ECE 0.425'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ssp.charts import pyplot, save_figure
from ssp.metrics import precision_recall_points

__all__ = ["CalibrationBin", "ErrorCase", "Evaluation", "Figures", "KindFigures", "PrPoint", "average_precision",
           "calibration_bins", "evaluate_scores", "expected_calibration_error", "figures", "write_charts"]

AMBIGUOUS = -1
NO_KIND = "(no kind)"


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Figures:
    """The confusion of one set of posts, AI being the positive class; a ratio with a zero
    denominator is None (undefined), never 0 or NaN."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.fp + self.tn

    @property
    def called_ai(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.positives)

    @property
    def f1(self) -> float | None:
        """2TP / (2TP + FP + FN); None only when there is no AI post and none is called AI."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def fpr(self) -> float | None:
        """The share of the not-AI posts called AI."""
        return _ratio(self.fp, self.negatives)

    @property
    def accuracy(self) -> float | None:
        return _ratio(self.tp + self.tn, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "positives": self.positives, "negatives": self.negatives, "called_ai": self.called_ai,
                "precision": self.precision, "recall": self.recall, "f1": self.f1, "fpr": self.fpr,
                "accuracy": self.accuracy, "confusion": {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn}}


def figures(gold: Sequence[int], predicted: Sequence[int]) -> Figures:
    """The confusion of 0/1 ``predicted`` against 0/1 ``gold``.

    >>> f = figures([1, 1, 0, 0, 0], [1, 0, 1, 0, 0])
    >>> f.tp, f.fp, f.tn, f.fn, round(f.f1, 3), round(f.fpr, 3)
    (1, 1, 2, 1, 0.5, 0.333)
    >>> figures([0, 0], [0, 0]).f1 is None
    True
    """
    gold, predicted = np.asarray(gold, dtype=int), np.asarray(predicted, dtype=int)
    return Figures(tp=int(((gold == 1) & (predicted == 1)).sum()), fp=int(((gold == 0) & (predicted == 1)).sum()),
                   tn=int(((gold == 0) & (predicted == 0)).sum()), fn=int(((gold == 1) & (predicted == 0)).sum()))


@dataclass(frozen=True)
class KindFigures:
    """The figures of the posts of one kind. For a kind with no AI post (traps, ordinary posts)
    only ``share_called_ai`` (its false-positive rate) means something: precision, recall and
    F1 are None there."""

    kind: str
    figures: Figures

    @property
    def n(self) -> int:
        return self.figures.n

    @property
    def called_ai(self) -> int:
        return self.figures.called_ai

    @property
    def share_called_ai(self) -> float | None:
        return _ratio(self.called_ai, self.n)

    @property
    def recall(self) -> float | None:
        return self.figures.recall if self.figures.positives else None

    def as_dict(self) -> dict[str, Any]:
        has_ai = self.figures.positives > 0
        return {"kind": self.kind, **self.figures.as_dict(), "share_called_ai": self.share_called_ai,
                **({} if has_ai else {"precision": None, "recall": None, "f1": None})}


@dataclass(frozen=True)
class ErrorCase:
    """One wrong answer: a not-AI post called AI (false positive) or an AI post missed."""

    id: str
    kind: str | None
    text: str
    gold: int
    score: float
    voters: list[str] | None = None  # weak labels only: ``name=vote`` of each function that voted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrPoint:
    threshold: float
    precision: float
    recall: float


@dataclass(frozen=True)
class CalibrationBin:
    """Posts whose score is in ``[lower, upper)`` (the last bin includes 1.0): how many, their mean
    score, and the share of them that are AI."""

    lower: float
    upper: float
    count: int
    mean_score: float | None
    observed_ai: float | None


def average_precision(gold: Sequence[int], scores: Sequence[float]) -> float | None:
    """Sum over thresholds of precision x the recall gained there (scikit-learn's definition);
    None without an AI post.

    >>> average_precision([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.4])
    0.8333333333333333
    >>> average_precision([0, 0], [0.2, 0.3]) is None
    True
    """
    gold = np.asarray(gold, dtype=int)
    if not (gold == 1).any():
        return None
    total, previous = 0.0, 0.0
    for point in precision_recall_points(gold, scores):
        total += (point.recall - previous) * point.precision
        previous = point.recall
    return float(total)


def calibration_bins(gold: Sequence[int], scores: Sequence[float], bins: int = 10) -> list[CalibrationBin]:
    """Equal-width bins of the scores over [0, 1], each with its mean score and observed share of AI.

    >>> [(b.count, b.mean_score, b.observed_ai) for b in calibration_bins([0, 1, 1], [0.1, 0.7, 0.9], 2)]
    [(1, 0.1, 0.0), (2, 0.8, 1.0)]
    """
    if bins < 1:
        raise ValueError(f"calibration needs at least 1 bin, got {bins}")
    gold, scores = np.asarray(gold, dtype=int), np.clip(np.asarray(scores, dtype="float64"), 0.0, 1.0)
    index = np.minimum((scores * bins).astype(int), bins - 1)
    found = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        found.append(CalibrationBin(b / bins, (b + 1) / bins, count,
                                    round(float(scores[inside].mean()), 12) if count else None,
                                    float(gold[inside].mean()) if count else None))
    return found


def expected_calibration_error(bins: Sequence[CalibrationBin]) -> float | None:
    """The count-weighted mean gap between mean score and observed share over the bins.

    >>> expected_calibration_error(calibration_bins([0, 1, 1], [0.1, 0.7, 0.9], 2))
    0.16666666666666663
    """
    total = sum(b.count for b in bins)
    if not total:
        return None
    return float(sum(b.count * abs(b.mean_score - b.observed_ai) for b in bins if b.count) / total)


@dataclass
class Evaluation:
    """Everything ``ssp evaluate`` reports about one scorer on one file."""

    scorer: str  # "weak labels" or "model <name> v<version>"
    gold_file: str
    threshold: float | None
    overall: Figures
    per_kind: list[KindFigures]
    false_positives: list[ErrorCase]
    false_negatives: list[ErrorCase]
    pr_curve: list[PrPoint]
    average_precision: float | None
    reliability: list[CalibrationBin]
    ece: float | None
    skipped: int  # ambiguous posts, left out
    extra: dict[str, Any] = field(default_factory=dict)

    def kind(self, name: str) -> KindFigures | None:
        return next((k for k in self.per_kind if k.kind == name), None)

    def line(self) -> str:
        o = self.overall
        return (f"{self.scorer} on {Path(self.gold_file).stem}: {o.n} posts ({self.skipped} ambiguous left out), "
                f"F1 {_fmt(o.f1)} (precision {_fmt(o.precision)}, recall {_fmt(o.recall)}), FPR {_fmt(o.fpr)}, "
                f"AP {_fmt(self.average_precision)}, ECE {_fmt(self.ece)}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (None where a figure is undefined; no NaN)."""
        return _finite({
            "scorer": self.scorer, "gold_file": self.gold_file, "threshold": self.threshold,
            "skipped_ambiguous": self.skipped, "overall": self.overall.as_dict(),
            "per_kind": [k.as_dict() for k in self.per_kind],
            "false_positives": [e.as_dict() for e in self.false_positives],
            "false_negatives": [e.as_dict() for e in self.false_negatives],
            "average_precision": self.average_precision, "pr_curve": [asdict(p) for p in self.pr_curve],
            "expected_calibration_error": self.ece, "reliability": [asdict(b) for b in self.reliability],
            **self.extra,
        })


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _errors(mask: np.ndarray, order: np.ndarray, top: int, ids, kinds, texts, gold, scores, voters) -> list[ErrorCase]:
    picked = [int(i) for i in order if mask[i]][:top]
    return [ErrorCase(str(ids[i]), kinds[i], str(texts[i]), int(gold[i]), float(scores[i]),
                      list(voters[i]) if voters is not None else None) for i in picked]


def evaluate_scores(gold: Sequence[int], scores: Sequence[float], predicted: Sequence[int] | None = None, *,
                    threshold: float | None = 0.5, ids: Sequence[str] | None = None,
                    kinds: Sequence[str | None] | None = None, texts: Sequence[str] | None = None,
                    voters: Sequence[Sequence[str]] | None = None, top: int = 10, bins: int = 10,
                    scorer: str = "model", gold_file: str = "gold",
                    extra: dict[str, Any] | None = None) -> Evaluation:
    """The :class:`Evaluation` of ``scores`` (and ``predicted``, default ``scores >= threshold``)
    against ``gold``; rows with gold -1 are counted in ``skipped`` and left out of everything else.

    Worst errors: the ``top`` false positives with the highest scores and the ``top`` false
    negatives with the lowest. Ties keep file order.
    """
    gold = np.asarray(gold, dtype=int).reshape(-1)
    scores = np.asarray(scores, dtype="float64").reshape(-1)
    size = gold.size
    if predicted is None:
        if threshold is None:
            raise ValueError("give the predictions or a threshold")
        predicted = (scores >= threshold).astype(int)
    predicted = np.asarray(predicted, dtype=int).reshape(-1)
    columns = {"scores": scores, "predicted": predicted, "ids": ids, "kinds": kinds, "texts": texts, "voters": voters}
    for name, values in columns.items():
        if values is not None and len(values) != size:
            raise ValueError(f"{size} gold labels but {len(values)} {name}")
    if not np.isin(gold, [0, 1, AMBIGUOUS]).all() or not np.isin(predicted, [0, 1]).all():
        raise ValueError("gold labels must be 1, 0 or -1 and predictions 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite numbers (give a prior for posts without a score)")
    keep = gold != AMBIGUOUS
    gold_k, scores_k, pred_k = gold[keep], scores[keep], predicted[keep]
    ids_k = np.asarray(ids if ids is not None else [str(i) for i in range(size)], dtype=object)[keep]
    kinds_k = [k for k, kept in zip(kinds if kinds is not None else [None] * size, keep, strict=True) if kept]
    texts_k = np.asarray(texts if texts is not None else [""] * size, dtype=object)[keep]
    voters_k = [v for v, kept in zip(voters, keep, strict=True) if kept] if voters is not None else None

    per_kind = []
    if any(k is not None for k in kinds_k):
        names = np.asarray([k if k is not None else NO_KIND for k in kinds_k], dtype=object)
        for kind in sorted(set(names)):
            inside = names == kind
            per_kind.append(KindFigures(kind, figures(gold_k[inside], pred_k[inside])))
    high_first = np.argsort(-scores_k, kind="stable")
    low_first = np.argsort(scores_k, kind="stable")
    rows = (ids_k, kinds_k, texts_k, gold_k, scores_k, voters_k)
    reliability = calibration_bins(gold_k, scores_k, bins)
    return Evaluation(
        scorer=scorer, gold_file=str(gold_file), threshold=threshold, overall=figures(gold_k, pred_k),
        per_kind=per_kind,
        false_positives=_errors((gold_k == 0) & (pred_k == 1), high_first, top, *rows),
        false_negatives=_errors((gold_k == 1) & (pred_k == 0), low_first, top, *rows),
        pr_curve=[PrPoint(p.threshold, p.precision, p.recall) for p in precision_recall_points(gold_k, scores_k)],
        average_precision=average_precision(gold_k, scores_k), reliability=reliability,
        ece=expected_calibration_error(reliability), skipped=int((~keep).sum()), extra=dict(extra or {}),
    )


def write_charts(evaluation: Evaluation, folder: Path) -> list[Path]:
    """``pr_curve.png`` and ``reliability.png`` of ``evaluation`` in ``folder``; returns their paths."""
    plt = pyplot()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = f"{evaluation.scorer} on {Path(evaluation.gold_file).name}"
    o = evaluation.overall

    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    if evaluation.pr_curve:
        recall = [0.0] + [p.recall for p in evaluation.pr_curve]
        precision = [evaluation.pr_curve[0].precision] + [p.precision for p in evaluation.pr_curve]
        ax.step(recall, precision, where="post", label=f"AP {_fmt(evaluation.average_precision)}")
    if o.precision is not None and o.recall is not None:
        ax.plot([o.recall], [o.precision], "o", color="crimson",
                label=f"operating point (F1 {_fmt(o.f1)})")
    if o.n:
        ax.axhline(o.positives / o.n, color="grey", linestyle=":", label="share of AI posts")
    ax.set(xlabel="recall (AI)", ylabel="precision (AI)", xlim=(0, 1.02), ylim=(0, 1.02), title=title)
    ax.legend(loc="lower left")
    pr_path = folder / "pr_curve.png"
    save_figure(fig, pr_path)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), dpi=100, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    filled = [b for b in evaluation.reliability if b.count]
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    top.plot([b.mean_score for b in filled], [b.observed_ai for b in filled], "o-",
             label=f"observed (ECE {_fmt(evaluation.ece)})")
    top.set(ylabel="share that is AI", ylim=(-0.02, 1.02), title=title)
    top.legend(loc="upper left")
    bins = evaluation.reliability
    bottom.bar([(b.lower + b.upper) / 2 for b in bins], [b.count for b in bins],
               width=[0.9 * (b.upper - b.lower) for b in bins])
    bottom.set(xlabel="score P(AI)", ylabel="posts", xlim=(0, 1))
    reliability_path = folder / "reliability.png"
    save_figure(fig, reliability_path)
    return [pr_path, reliability_path]
