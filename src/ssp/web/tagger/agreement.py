"""Annotator agreement: label stacks replayed from ``label_history``, label counts and Cohen's kappa."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


def cohen_kappa(pairs: Sequence[tuple[int, int]]) -> float | None:
    """Cohen's kappa of two annotators' binary labels on the same tweets; None when it is undefined
    (no tweets, or both annotators always gave one and the same label, so chance agreement is 1).

    >>> cohen_kappa([(1, 1), (0, 0), (1, 0), (0, 0)])
    0.5
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    a_ai = sum(a == 1 for a, _ in pairs) / n
    b_ai = sum(b == 1 for _, b in pairs) / n
    chance = a_ai * b_ai + (1 - a_ai) * (1 - b_ai)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


@dataclass(frozen=True)
class Decision:
    """One entry of a tweet's label stack, as replayed from ``label_history``."""

    history_id: int
    label: int | None
    annotator: str
    at: datetime


def replay(events: Sequence[tuple]) -> list[Decision]:
    """A tweet's label stack from its history rows (history_id, label, action, annotator, labelled_at), oldest
    first: ``label`` and ``import`` push, ``undo`` pops, ``skip`` changes nothing. The top is the label now."""
    stack: list[Decision] = []
    for history_id, label, action, annotator, at in events:
        if action in ("label", "import"):
            stack.append(Decision(history_id, label, annotator, at))
        elif action == "undo" and stack:
            stack.pop()
    return stack


def agreement_from_history(rows: Sequence[tuple]) -> dict:
    """Per-annotator label counts and Cohen's kappa per pair of annotators, from ``label_history`` rows
    (tweet_id, history_id, label, action, annotator, labelled_at) ordered by tweet and history id.

    An annotator's label on a tweet is their latest one still on the tweet's stack (an undone
    label does not count); kappa is over the tweets exactly two annotators labelled.
    """
    per_annotator: dict[str, int] = {}
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    tweets_by_several = 0

    def close(events: list[tuple]) -> None:
        nonlocal tweets_by_several
        latest: dict[str, int] = {}
        for decision in replay(events):
            latest[decision.annotator] = decision.label
        for annotator in latest:
            per_annotator[annotator] = per_annotator.get(annotator, 0) + 1
        if len(latest) == 2:
            (a, label_a), (b, label_b) = sorted(latest.items())
            pairs.setdefault((a, b), []).append((label_a, label_b))
        elif len(latest) > 2:
            tweets_by_several += 1

    current, events = None, []
    for tweet_id, *event in rows:
        if tweet_id != current and events:
            close(events)
            events = []
        current = tweet_id
        events.append(tuple(event))
    if events:
        close(events)
    return {
        "annotators": [{"annotator": a, "labels": n} for a, n in sorted(per_annotator.items())],
        "pairs": [{"annotators": [a, b], "tweets": len(labels),
                   "agreement": round(sum(x == y for x, y in labels) / len(labels), 6),
                   "kappa": None if (k := cohen_kappa(labels)) is None else round(k, 6)}
                  for (a, b), labels in sorted(pairs.items())],
        "tweets_by_more_than_two": tweets_by_several,
    }
