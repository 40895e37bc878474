"""Figures for weak labels: the labelling-function summary and binary metrics for the AI class.

Pure functions over numpy arrays, so they can be checked against matrices worked out by hand.

>>> import numpy as np
>>> m = binary_metrics(np.array([1, 1, 0, 0]), np.array([1, -1, 0, 1]))
>>> m["accuracy"], m["precision"], m["recall"], m["confusion"]
(0.5, 0.5, 0.5, [[1, 1], [1, 1]])
>>> m["abstained"], m["accuracy_voted"]
(1, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

ABSTAIN = -1


def lf_summary(L: np.ndarray, names: Sequence[str], Y: np.ndarray | None = None) -> pd.DataFrame:
    """Per labelling function: Polarity, Coverage, Overlaps, Conflicts, and with gold ``Y`` also
    Correct, Incorrect and Emp. Acc. (the figures Snorkel's ``LFAnalysis.lf_summary`` reports).

    ``L`` is the label matrix (rows: data points, columns: LFs, -1 = abstain).
    """
    L = np.asarray(L)
    if L.ndim != 2 or L.shape[1] != len(names):
        raise ValueError(f"label matrix of shape {L.shape} does not match {len(names)} labelling functions")
    votes = L != ABSTAIN
    n = max(L.shape[0], 1)
    votes_per_row = votes.sum(axis=1)
    rows = []
    for j in range(len(names)):
        voted = votes[:, j]
        labels = L[voted, j]
        # another LF voted on the same point; a conflict is another LF voting a different label
        overlaps = voted & (votes_per_row > 1)
        others = np.delete(L, j, axis=1)
        conflicts = voted & np.any((others != ABSTAIN) & (others != L[:, [j]]), axis=1)
        row = {
            "j": j,
            "Polarity": sorted(int(v) for v in np.unique(labels)),
            "Coverage": voted.sum() / n,
            "Overlaps": overlaps.sum() / n,
            "Conflicts": conflicts.sum() / n,
        }
        if Y is not None:
            Y = np.asarray(Y)
            correct = int((labels == Y[voted]).sum())
            row["Correct"] = correct
            row["Incorrect"] = int(voted.sum()) - correct
            row["Emp. Acc."] = correct / voted.sum() if voted.sum() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, index=list(names))


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, precision, recall and F1 for the AI class (1), and the confusion matrix.

    An abstention (-1) in ``y_pred`` is a prediction of "not AI" for precision and recall and
    is never correct for ``accuracy``; ``abstained`` says how many there were and
    ``accuracy_voted`` is the accuracy on the rows that got a label.
    Confusion rows are the true class (0, 1), columns the predicted one.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.shape[0]} gold labels but {y_pred.shape[0]} predictions")
    predicted_ai = y_pred == 1
    voted = y_pred != ABSTAIN
    tp = int((predicted_ai & (y_true == 1)).sum())
    fp = int((predicted_ai & (y_true == 0)).sum())
    fn = int((~predicted_ai & (y_true == 1)).sum())
    tn = int((~predicted_ai & (y_true == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = int(y_true.shape[0])
    return {
        "n": n,
        "accuracy": float((y_true == y_pred).sum() / n) if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "abstained": int((y_pred == ABSTAIN).sum()),
        "accuracy_voted": float((y_true == y_pred)[voted].mean()) if voted.any() else 0.0,
        "confusion": [[tn, fp], [fn, tp]],
    }
