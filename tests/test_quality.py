"""Issue 18's goals, asserted on the fixed labelled dev files: the weak labels (labelling functions + label
model, as ``ssp evaluate --labels`` computes them) must be right on real and written posts, not only on the
synthetic stream. The served model's goals are asserted where the demo trains it, on the model it serves
(tests/test_demo.py).

The files are fixed, so the figures are stable; a held-out set of the same kinds measures the result, so
these bounds are the issue's goals, not figures tuned to the files."""

from __future__ import annotations

import pytest

from ssp.evaluation.gold import read_gold
from ssp.evaluation.scoring import weak_label_scores

# the goals
WEAK_F1 = 0.75
WEAK_TRAP_RATE = 0.10
# not in the table for weak labels, but the labels train the served model, whose goal is 3%
WEAK_REAL_FPR = 0.03


@pytest.fixture(scope="module")
def written_weak(written_dev_path):
    gold = read_gold(written_dev_path)
    return weak_label_scores(gold, background=2000).evaluate(gold)


def test_weak_labels_meet_the_goals_on_written_posts(written_weak):
    overall = written_weak.overall
    assert overall.f1 >= WEAK_F1, written_weak.line()
    assert written_weak.kind("trap").share_called_ai <= WEAK_TRAP_RATE, written_weak.line()
    # the kinds the issue names are all there and all scored
    assert {k.kind for k in written_weak.per_kind} >= {"ai_keyword", "ai_implicit", "trap", "ordinary"}
    assert written_weak.kind("ordinary").share_called_ai <= WEAK_TRAP_RATE
    # AI posts without an obvious term are found too, not only the keyword ones
    assert written_weak.kind("ai_implicit").recall >= 0.5
    assert written_weak.kind("ai_keyword").recall >= 0.8


def test_weak_labels_call_almost_no_ordinary_real_tweet_ai(real_gold_path):
    gold = read_gold(real_gold_path)
    evaluation = weak_label_scores(gold, background=2000).evaluate(gold)
    assert evaluation.overall.negatives >= 190
    assert evaluation.overall.fpr <= WEAK_REAL_FPR, evaluation.line()
