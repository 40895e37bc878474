"""Weak labels for a frame of posts: the label matrix, Snorkel's label model, and its answers.

The one place that turns rows into ``slabel``/``slabel_prob``, shared by ``ssp label`` (dataset
tables), ``ssp evaluate --labels`` (a labelled file) and ``ssp al simulate --gold`` (a pool).
The label model is told how rare AI posts are (``LabelConfig.ai_prior``): on a real stream they
are a minority, and a model that assumes balanced classes turns every lone positive vote into a
confident AI label.

>>> import numpy as np
>>> L = np.array([[1, -1], [1, 0], [-1, 0], [-1, -1]])
>>> majority_vote(L).tolist()
[1, -1, 0, -1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ssp.config import LabelConfig
from ssp.errors import SspError
from ssp.labeling.metrics import ABSTAIN

__all__ = ["LabelingError", "WeakLabels", "apply_frame", "fit_label_model", "label_frame", "majority_vote",
           "weak_labels"]


class LabelingError(SspError, RuntimeError):
    """The dataset cannot be labelled as asked; the message says which table and why."""


@dataclass
class WeakLabels:
    """Per row: the label matrix ``L``, ``labels`` (-1 = no vote) and ``probs`` (P(AI), NaN = no vote)."""

    names: list[str]
    L: np.ndarray
    labels: np.ndarray
    probs: np.ndarray

    def voters(self, row: int) -> list[str]:
        """``name=vote`` for each function that voted on ``row``."""
        return [f"{name}={int(vote)}" for name, vote in zip(self.names, self.L[row], strict=True) if vote != ABSTAIN]


def apply_frame(lfs, frame: pd.DataFrame) -> np.ndarray:
    """The label matrix of ``frame`` (rows: posts, columns: ``lfs``)."""
    from snorkel.labeling import PandasLFApplier

    if frame.empty:
        return np.empty((0, len(lfs)), dtype=np.int8)
    return PandasLFApplier(lfs).apply(frame, progress_bar=False).astype(np.int8)


def _check_prior(prior: float) -> float:
    if not 0.0 < prior < 1.0:
        raise LabelingError(f"LabelConfig.ai_prior must be strictly between 0 and 1, got {prior!r}")
    return float(prior)


def fit_label_model(L_train: np.ndarray, config: LabelConfig):
    """Snorkel's LabelModel fitted on a label matrix (the snorkel_train split's, or a pool's)."""
    from snorkel.labeling.model import LabelModel

    prior = _check_prior(config.ai_prior)
    if L_train.shape[0] == 0 or not (L_train != ABSTAIN).any():
        raise LabelingError("no labelling function voted on any tweet of the snorkel_train split: nothing to fit")
    model = LabelModel(cardinality=2, verbose=False)
    model.fit(L_train, n_epochs=config.epochs, lr=config.learning_rate, l2=config.l2, seed=config.seed,
              class_balance=[1.0 - prior, prior], prec_init=config.prec_init, progress_bar=False)
    return model


def weak_labels(model, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``slabel`` (-1 where no function voted or the model is undecided) and ``slabel_prob``
    (P(AI); NaN where no function voted, since the model then only repeats its class prior)."""
    if L.shape[0] == 0:
        return np.empty(0, dtype=np.int8), np.empty(0, dtype=np.float32)
    probs = model.predict_proba(L)[:, 1].astype(np.float32)
    labels = np.where(probs > 0.5, 1, np.where(probs < 0.5, 0, ABSTAIN)).astype(np.int8)
    no_votes = ~(L != ABSTAIN).any(axis=1)
    labels[no_votes] = ABSTAIN
    probs[no_votes] = np.nan
    return labels, probs


def majority_vote(L: np.ndarray) -> np.ndarray:
    """Snorkel's MajorityLabelVoter with ties and empty rows abstaining."""
    from snorkel.labeling.model import MajorityLabelVoter

    if L.shape[0] == 0:
        return np.empty(0, dtype=np.int8)
    return MajorityLabelVoter(cardinality=2).predict(L, tie_break_policy="abstain").astype(np.int8)


def label_frame(frame: pd.DataFrame, config: LabelConfig | None = None, *, lfs=None, model=None,
                fit_on: pd.DataFrame | None = None) -> WeakLabels:
    """Weak labels for the rows of ``frame`` (columns as :data:`ssp.labeling.pipeline.LF_INPUT_COLUMNS`).

    ``model`` is a fitted label model; without one a model is fitted on the label matrix of
    ``fit_on`` plus ``frame`` (Snorkel fits on unlabelled rows, so the rows being labelled may be
    among them).
    """
    from ssp.labeling.functions import lf_names, make_lfs

    config = config or LabelConfig()
    lfs = lfs if lfs is not None else make_lfs(config.keyword_dir or None)
    L = apply_frame(lfs, frame)
    if model is None:
        L_fit = L if fit_on is None else np.vstack([apply_frame(lfs, fit_on), L])
        model = fit_label_model(L_fit, config)
    labels, probs = weak_labels(model, L)
    return WeakLabels(lf_names(lfs), L, labels, probs)
