"""Scores for the posts of a labelled file: from the weak labels, or from a served model.

Both return a :class:`Scored` that :func:`ssp.evaluation.report.evaluate_scores` takes as it is.

Weak labels: the labelling functions vote on every post of the file; Snorkel's label model is
fitted on the label matrix of a synthetic background sample (``background`` tweets from
:func:`ssp.sources.synthetic.synthetic_payloads`, the stream ``ssp demo`` fits its label model
on) plus the file itself, so a small file still gets a stable model whose learnt accuracies
are those of the pipeline, not of a dozen rows. A post no function voted on is called not AI,
with the prior ``LabelConfig.ai_prior`` as its score in the charts; ``voters`` names the
functions that voted on each post.

A served model: every text goes to the server's ``:predict`` (all batches pinned to the version
that was AVAILABLE when the call began); a post is called AI at or over the threshold.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssp.config import LabelConfig, ServeConfig, TrainConfig
from ssp.evaluation.gold import GoldSet, post_fields
from ssp.evaluation.report import Evaluation, evaluate_scores
from ssp.labeling.pipeline import LF_INPUT_COLUMNS
from ssp.model.export import MODEL_CARD_FILE
from ssp.serving.layout import served_model_folder, version_folder

__all__ = ["Scored", "background_frame", "card_threshold", "default_base_path", "model_scores", "weak_label_scores"]

LF_COLUMNS = LF_INPUT_COLUMNS  # what a labelling function may read of a post
DEFAULT_THRESHOLD = 0.5


@dataclass
class Scored:
    """A scorer's answer for every post of a file, in file order."""

    scorer: str
    scores: np.ndarray
    predicted: np.ndarray
    threshold: float | None
    voters: list[list[str]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def evaluate(self, gold: GoldSet, top: int = 10, bins: int = 10) -> Evaluation:
        frame = gold.frame
        return evaluate_scores(frame["label"].to_numpy(), self.scores, self.predicted, threshold=self.threshold,
                               ids=frame["id"].tolist(), kinds=frame["kind"].tolist(), texts=frame["text"].tolist(),
                               voters=self.voters, top=top, bins=bins, scorer=self.scorer, gold_file=str(gold.path),
                               extra=self.extra)


def background_frame(n: int, seed: int) -> pd.DataFrame:
    """``n`` synthetic tweets as rows the labelling functions read (lists for urls and hashtags)."""
    from ssp.sources.synthetic import synthetic_payloads
    from ssp.tweets import parse_tweet

    rows = []
    for payload in synthetic_payloads(n, seed=seed):
        tweet = parse_tweet(payload)
        rows.append({"id": str(tweet.id), **post_fields(tweet)})
    return pd.DataFrame(rows, columns=list(LF_COLUMNS))


def weak_label_scores(gold: GoldSet, background: int = 5000, seed: int = 42,
                      config: LabelConfig | None = None) -> Scored:
    """The weak labels of ``gold``'s posts, the label model fitted on ``background`` synthetic tweets + the file."""
    from ssp.labeling.weak import label_frame

    config = config or LabelConfig()
    fit_on = background_frame(background, seed) if background > 0 else None
    weak = label_frame(gold.frame[list(LF_COLUMNS)], config, fit_on=fit_on)
    voted = ~np.isnan(weak.probs)
    scores = np.where(voted, weak.probs, config.ai_prior).astype("float64")
    predicted = (weak.labels == 1).astype(int)
    voters = [weak.voters(row) for row in range(len(gold.frame))]
    extra = {"label_model": {"background_tweets": background, "background_seed": seed,
                             "ai_prior": config.ai_prior, "functions": len(weak.names)},
             "coverage": float(voted.mean()) if len(voted) else None,
             "no_vote_posts": int((~voted).sum())}
    return Scored("weak labels", scores, predicted, None, voters, extra)


def default_base_path(model_name: str, serve: ServeConfig, train: TrainConfig) -> Path:
    """Where the model cards of ``model_name``'s served versions are: ``ServeConfig.model_base_path``, else
    where the trainer exports (``<TrainConfig.models_path>/<model_name>``)."""
    return served_model_folder(model_name, train.models_path, serve.model_base_path)


def _threshold_in(card: dict) -> float | None:
    value = card.get("threshold", card.get("decision_threshold"))
    if isinstance(value, dict):
        value = value.get("value", value.get("threshold"))
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    return None


def card_threshold(model_name: str, version: int | None, base_path: Path | None = None) -> tuple[float | None, str]:
    """The decision threshold in the model card of ``version`` under ``base_path``, when that card is on this
    machine, and where it was found. ``base_path`` defaults to where ``ssp serve`` finds the versions
    (:func:`ssp.serving.layout.served_model_folder` of gin's ServeConfig and TrainConfig)."""
    if version is None:
        return None, "no served version"
    if base_path is None:
        base_path = default_base_path(model_name, ServeConfig(), TrainConfig())
    path = version_folder(base_path, version) / MODEL_CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"no readable model card at {path}"
    threshold = _threshold_in(card) if isinstance(card, dict) else None
    return threshold, (f"model card {path}" if threshold is not None else f"no threshold in {path}")


def model_scores(gold: GoldSet, client, threshold: float | None = None, base_path: Path | None = None,
                 advance: Callable[[int], None] = lambda n: None) -> Scored:
    """P(AI) from the served model for every post of ``gold``; the threshold is ``threshold``, else
    the served version's model card's, else 0.5."""
    version = client.available_version()
    if threshold is not None:
        source = "--threshold"
    else:
        threshold, source = card_threshold(client.model_name, version, base_path)
        if threshold is None:
            threshold, source = DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD} ({source})"
    texts = gold.frame["text"].tolist()
    parts = []
    step = client.batch_size * 4
    for start in range(0, len(texts), step):
        chunk = texts[start:start + step]
        parts.append(client.predict(chunk, version=version))
        advance(len(chunk))
    scores = np.concatenate(parts).astype("float64") if parts else np.zeros(0)
    name = f"model {client.model_name}" + (f" v{version}" if version is not None else "")
    extra = {"model": {"url": client.base_url, "name": client.model_name, "version": version,
                       "threshold_source": source}}
    return Scored(name, scores, (scores >= threshold).astype(int), float(threshold), None, extra)
