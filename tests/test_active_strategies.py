"""Query strategies on fixed probabilities: scores worked out by hand, orders, ties, the seeded random control."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssp.active.strategies import (
    DIVERSITY_PREFILTER,
    STRATEGIES,
    diverse_batch,
    order,
    random_scores,
    scores,
    stochastic_scores,
    text_density,
    text_vectors,
)

# P(AI) of six tweets; positions 1 and 4 are equally uncertain (0.4 and 0.6), 2 and 5 equally sure.
MODEL = np.array([0.95, 0.4, 0.0, 0.5, 0.6, 1.0])
IDS = np.array([60, 50, 40, 30, 20, 10])


def test_least_confidence_scores_and_order():
    assert scores("least_confidence", MODEL) == pytest.approx([0.05, 0.4, 0.0, 0.5, 0.4, 0.0])
    # 0.5 first; the 0.4/0.6 tie by position without ids, by ascending id with them
    assert order("least_confidence", MODEL).tolist() == [3, 1, 4, 0, 2, 5]
    assert order("least_confidence", MODEL, ids=IDS).tolist() == [3, 4, 1, 0, 5, 2]


def test_entropy_is_binary_entropy_in_bits_and_orders_like_least_confidence():
    expected = [-(p * math.log2(p) + (1 - p) * math.log2(1 - p)) if 0 < p < 1 else 0.0 for p in MODEL]
    assert scores("entropy", MODEL) == pytest.approx(expected)
    assert scores("entropy", MODEL)[3] == pytest.approx(1.0)
    assert order("entropy", MODEL, ids=IDS).tolist() == order("least_confidence", MODEL, ids=IDS).tolist()


def test_disagreement_uses_snorkel_and_counts_an_abstain_as_no_opinion():
    snorkel = np.array([0.1, 0.4, np.nan, 0.5, 0.0, np.nan])
    # |0.95-0.1|, |0.4-0.4|, |0-0.5|, |0.5-0.5|, |0.6-0|, |1-0.5|
    assert scores("disagreement", MODEL, snorkel) == pytest.approx([0.85, 0.0, 0.5, 0.0, 0.6, 0.5])
    assert order("disagreement", MODEL, snorkel, ids=IDS).tolist() == [0, 4, 5, 2, 3, 1]


def test_stochastic_uncertainty_is_a_seeded_weighted_draw_by_least_confidence():
    values = scores("stochastic_uncertainty", MODEL, ids=IDS, seed=5)
    weights = scores("least_confidence", MODEL)
    assert values == pytest.approx(np.log(1.0 - random_scores(IDS, 5)) / np.maximum(weights, 1e-12))
    # fixed by (seed, id): the same key for a tweet whichever others are ranked beside it
    assert scores("stochastic_uncertainty", MODEL[[4, 1]], ids=IDS[[4, 1]], seed=5).tolist() == values[[4, 1]].tolist()
    # the sure tweets (p = 0 and 1, weight 0) come last, by ascending id
    assert order("stochastic_uncertainty", MODEL, ids=IDS, seed=5).tolist()[-2:] == [5, 2]
    # another seed, another draw
    assert len({tuple(order("stochastic_uncertainty", MODEL, ids=IDS, seed=s).tolist()) for s in range(10)}) > 1


def test_stochastic_uncertainty_draws_in_proportion_to_uncertainty_not_the_top_batch():
    # 20 tweets at p = 0.5 (weight 0.5) and 80 at p = 0.3 (weight 0.3): least confidence asks only the
    # first kind; a weighted draw's first pick is a p = 0.3 one with probability 24 / 34 = 0.71
    p = np.array([0.5] * 20 + [0.3] * 80)
    ids = np.arange(100, 200)
    assert set(order("least_confidence", p, ids=ids)[:20].tolist()) == set(range(20))
    firsts = np.array([order("stochastic_uncertainty", p, ids=ids, seed=s)[0] for s in range(1000)])
    assert np.mean(firsts >= 20) == pytest.approx(24 / 34, abs=0.05)
    batch = order("stochastic_uncertainty", p, ids=ids, seed=0)[:20]
    assert 0 < np.sum(batch < 20) < 20  # both kinds in one batch
    # a near-certain tweet (weight 0.001) is practically never in the first batch of 20
    sure = np.append(p, 0.999)
    assert sum(100 in order("stochastic_uncertainty", sure, ids=np.arange(100, 201), seed=s)[:20]
               for s in range(200)) <= 2


def test_stochastic_scores_keys_are_finite_and_zero_weight_is_last():
    keys = stochastic_scores(np.array([0.0, 0.5, 1e-300]), np.array([1, 2, 3]), seed=0)
    assert np.isfinite(keys).all() and keys[1] > max(keys[0], keys[2])


def test_random_order_is_a_seeded_hash_of_the_ids():
    ids = np.arange(1000, 1200)
    first = order("random", None, ids=ids, seed=3)
    assert sorted(first.tolist()) == list(range(200))
    assert order("random", None, ids=ids, seed=3).tolist() == first.tolist()  # a page reload
    assert order("random", None, ids=ids, seed=4).tolist() != first.tolist()
    # a tweet's score does not depend on which other tweets are ranked with it, nor on the model
    subset = ids[::7][::-1]
    assert random_scores(subset, 3) == pytest.approx(scores("random", None, ids=ids, seed=3)[::7][::-1])
    assert scores("random", np.full(200, 0.5), ids=ids, seed=3) == pytest.approx(random_scores(ids, 3))
    values = random_scores(ids, 3)
    assert ((values >= 0) & (values < 1)).all() and len(set(values.tolist())) == 200
    # roughly uniform: a quarter of 200 draws in each quarter, give or take
    assert all(30 <= n <= 70 for n in np.histogram(values, bins=4, range=(0, 1))[0])


def test_random_order_is_the_same_in_a_fresh_process():
    import subprocess
    import sys

    ids = [1779004451270000001, 5, -3]
    code = ("import numpy as np; from ssp.active.strategies import order; "
            f"print(order('random', None, ids=np.array({ids}), seed=9).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(order("random", None, ids=np.array(ids), seed=9).tolist())


def test_every_strategy_returns_a_permutation_most_informative_first():
    rng = np.random.default_rng(0)
    model, snorkel = rng.random(50), rng.random(50)
    texts = [f"post {i} about topic {i % 7}" for i in range(50)]
    for strategy in STRATEGIES:
        ranked = order(strategy, model, snorkel, ids=np.arange(50), texts=texts, batch=5)
        values = scores(strategy, model, snorkel, ids=np.arange(50), texts=texts, batch=5)
        assert sorted(ranked.tolist()) == list(range(50))
        assert (np.diff(values[ranked]) <= 0).all(), strategy


@pytest.mark.parametrize(("call", "message"), [
    (lambda: scores("margin", MODEL), "query strategy 'margin' is unknown"),
    (lambda: scores("least_confidence", None), "model_probs is required"),
    (lambda: scores("entropy", np.array([0.2, 1.5])), r"probabilities in \[0, 1\]; entry 1 is 1.5"),
    (lambda: scores("entropy", np.array([0.2, np.nan])), "entry 1 is nan"),
    (lambda: scores("entropy", np.array([[0.2, 0.8]])), "must be a 1-D array"),
    (lambda: scores("disagreement", MODEL), "snorkel_probs is required"),
    (lambda: scores("disagreement", MODEL, np.array([0.1, 2.0, 0, 0, 0, 0])), "snorkel_probs must hold"),
    (lambda: scores("disagreement", MODEL, np.array([0.1])), "snorkel_probs has 1 entries but model_probs has 6"),
    (lambda: scores("random", None), "needs ids or model_probs"),
    (lambda: order("least_confidence", MODEL, ids=np.array([1, 2])), "one id per tweet"),
    (lambda: order("random", None, ids=np.array(["a", "b"])), "ids must be integers"),
    (lambda: scores("diverse_uncertainty", MODEL), "needs the tweets' texts and the batch size"),
    (lambda: scores("density_uncertainty", MODEL), "density_uncertainty strategy needs the tweets' texts"),
    (lambda: diverse_batch(MODEL, ["a"], 2), "texts has 1 entries but model_probs has 6"),
    (lambda: diverse_batch(MODEL, ["a"] * 6, 0), "batch must be an integer of 1 or more"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# Three kinds of post, eight near-copies of each, all uncertain; the first kind the most. Then sure ones.
KINDS = ("fine-tuning the LLM with LoRA adapters, loss {}", "my cat sleeps on the sofa again {}",
         "what a football match tonight, {} goals")
POOL_TEXTS = [kind.format(i) for kind in KINDS for i in range(8)] + [f"sure post number {i}" for i in range(6)]
POOL_PROBS = np.array([0.5] * 8 + [0.45] * 8 + [0.42] * 8 + [0.99] * 6)


def test_diverse_uncertainty_asks_about_each_kind_of_post_where_least_confidence_asks_about_one():
    kind_of = [i // 8 for i in range(24)] + [3] * 6
    top = order("least_confidence", POOL_PROBS)[:3]
    diverse = order("diverse_uncertainty", POOL_PROBS, texts=POOL_TEXTS, batch=3)[:3]
    assert {kind_of[i] for i in top} == {0}
    assert sorted(kind_of[i] for i in diverse) == [0, 1, 2]
    # most uncertain first, and the same batch for the same seed
    assert (np.diff(POOL_PROBS[diverse]) <= 0).all()
    assert diverse.tolist() == order("diverse_uncertainty", POOL_PROBS, texts=POOL_TEXTS, batch=3)[:3].tolist()


def test_density_uncertainty_asks_about_a_typical_uncertain_post_before_an_uncertain_outlier():
    # an outlier scored 0.5 and 24 posts of three kinds scored 0.42-0.5: least confidence asks about the outlier
    # among the first, density about the 24 posts like many others first, then the outlier, then the sure posts
    texts = ["zzzq xxyv wwpk", *POOL_TEXTS]
    probs = np.concatenate([[0.5], POOL_PROBS])
    assert 0 in order("least_confidence", probs)[:9].tolist()
    ranked = order("density_uncertainty", probs, texts=texts).tolist()
    assert set(ranked[:24]) == set(range(1, 25)) and ranked[24] == 0
    density = text_density(texts)
    assert density[0] < 0.05 and (density[1:25] > 0.2).all()  # the outlier shares only hash collisions
    np.testing.assert_allclose(scores("density_uncertainty", probs, texts=texts),
                               (1 - np.maximum(probs, 1 - probs)) * density)


def test_a_diverse_batch_comes_from_the_most_uncertain_and_is_never_short():
    batch = diverse_batch(POOL_PROBS, POOL_TEXTS, 2, seed=4)
    prefilter = order("least_confidence", POOL_PROBS)[:DIVERSITY_PREFILTER * 2]
    assert len(set(batch.tolist())) == 2 and set(batch.tolist()) <= set(prefilter.tolist())
    # copies of one text make empty clusters; the next most uncertain posts fill the batch
    copies = diverse_batch(np.array([0.5, 0.5, 0.5, 0.1]), ["same text"] * 4, 3)
    assert copies.tolist() == [0, 1, 2]
    assert diverse_batch(POOL_PROBS[:2], POOL_TEXTS[:2], 5).tolist() == [0, 1]


def test_text_vectors_are_unit_vectors_of_shared_character_ngrams():
    vectors = text_vectors(["Fine-tuning LLMs", "fine tuning llms!!", "Fußball heute", "   "])
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0) and not vectors[3].any()
    assert vectors[0] @ vectors[1] > 0.99 and vectors[0] @ vectors[2] < 0.1
