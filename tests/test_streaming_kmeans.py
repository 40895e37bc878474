"""ssp.clustering.streaming_kmeans: Spark MLlib's streaming k-means rule in numpy, checked against MLlib itself.

The equivalence tests run the same initial centres and batches through
``pyspark.mllib.clustering.StreamingKMeansModel.update`` (on an RDD of the test session's
SparkContext) and through :class:`StreamingKMeans`, and compare centres and weights after every batch.
"""

from __future__ import annotations

import ast
import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest

import ssp.clustering.streaming_kmeans
from ssp.clustering import StreamingKMeans, decay_from_half_life
from ssp.sources.points import PointsSource, parse_scenario

CLUSTERING = Path(__file__).resolve().parents[1] / "src" / "ssp" / "clustering"
# ssp.clustering is pure: no engine, broker, database or web code, and no ssp module that brings them
FORBIDDEN = ("pyspark", "py4j", "kafka", "confluent_kafka", "psycopg2", "psycopg", "sqlalchemy", "flask", "bokeh",
             "mlflow", "ssp.streaming", "ssp.storage", "ssp.kafka", "ssp.infra", "ssp.web")


def forbidden_imports(source: str) -> list[str]:
    """The modules ``source`` imports (statements anywhere, or ``import_module``/``__import__`` of a literal)
    that FORBIDDEN rules out."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names = [str(node.args[0].value)]
        else:
            continue
        found += [name for name in names if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)]
    return found


def test_the_import_check_catches_every_way_of_importing():
    source = ("import numpy\nimport pyspark.sql\ndef f():\n    from kafka import KafkaProducer\n"
              "    importlib.import_module('psycopg2')\nfrom ssp.storage.tables import x\n")
    assert sorted(forbidden_imports(source)) == ["kafka", "psycopg2", "pyspark.sql", "ssp.storage.tables"]


def test_ssp_clustering_imports_no_spark_kafka_database_or_web_code():
    files = sorted(CLUSTERING.rglob("*.py"))
    assert CLUSTERING / "streaming_kmeans.py" in files
    offenders = {str(path.relative_to(CLUSTERING)): bad for path in files
                 if (bad := forbidden_imports(path.read_text(encoding="utf-8")))}
    assert offenders == {}


def test_module_docstring_examples_run():
    assert doctest.testmod(ssp.clustering.streaming_kmeans).failed == 0


# ---------------------------------------------------------------------- the pure model
def test_the_hand_check():
    model = StreamingKMeans(centres=[[0, 0], [100, 100]], weights=[1, 1], decay_factor=0.5)
    labels = model.learn_predict_many([[1, 1], [3, 3]])
    assert labels.tolist() == [0, 0]
    np.testing.assert_allclose(model.centres, [[1.6, 1.6], [100, 100]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.weights, [2.5, 0.5], rtol=0, atol=1e-12)
    assert (model.n_batches, model.n_points, model.last_update.split) == (1, 2, None)


def test_learn_many_is_assign_sums_and_fold():
    rng = np.random.default_rng(5)
    points = rng.normal(size=(300, 3))
    whole = StreamingKMeans(k=4, dim=3, decay_factor=0.7, seed=2)
    split = StreamingKMeans.from_state(whole.to_state())
    whole.learn_many(points)
    # the way a stream job does it: sums per partition against the same centres, folded on the driver
    centres = split.centres
    parts = [ssp.clustering.cluster_sums(part, ssp.clustering.assign(part, centres), 4)
             for part in np.array_split(points, 3)]
    split.update_from_sums(sum(p[0] for p in parts), sum(p[1] for p in parts))
    np.testing.assert_allclose(split.centres, whole.centres, rtol=0, atol=1e-12)
    assert split.weights.tolist() == whole.weights.tolist()


def test_random_centres_are_seeded_and_drawn_lazily_without_dim():
    eager = StreamingKMeans(k=3, dim=2, seed=9, init_weight=2.0)
    lazy = StreamingKMeans(k=3, seed=9, init_weight=2.0)
    assert not lazy.initialised
    lazy.learn_many([])  # an empty batch before any point: nothing to draw the dimension from
    assert not lazy.initialised and lazy.n_batches == 1
    state = json.loads(json.dumps(lazy.to_state()))
    restored = StreamingKMeans.from_state(state)
    assert not restored.initialised
    eager.learn_many([[0.5, 0.5]])
    restored.learn_many([[0.5, 0.5]])
    assert restored.centres.tolist() == eager.centres.tolist()
    assert StreamingKMeans(k=3, dim=2, seed=10).centres.tolist() != eager.centres.tolist()


def test_time_unit_points_discounts_per_point_and_empty_batches_still_decay():
    model = StreamingKMeans(centres=[[0.0], [10.0]], weights=[4, 4], decay_factor=0.5, time_unit="points")
    model.learn_many([[0.0], [0.0], [0.0]])
    assert model.weights.tolist() == [4 * 0.125 + 3, 4 * 0.125]
    batches = StreamingKMeans(centres=[[0.0], [10.0]], weights=[4, 4], half_life=1)
    batches.learn_many(np.zeros((0, 1)))
    assert batches.weights.tolist() == [2.0, 2.0] and batches.last_update.points == 0


def test_state_round_trips_through_json_exactly():
    rng = np.random.default_rng(1)
    model = StreamingKMeans(k=5, dim=4, half_life=3.5, time_unit="points", seed=4)
    for _ in range(3):
        model.learn_many(rng.normal(size=(50, 4)) * 7)
    text = json.dumps(model.to_state(), allow_nan=False)
    twin = StreamingKMeans.from_state(json.loads(text))
    assert twin.to_state() == model.to_state()
    batch = rng.normal(size=(40, 4))
    assert model.learn_predict_many(batch).tolist() == twin.learn_predict_many(batch).tolist()
    assert twin.centres.tolist() == model.centres.tolist() and twin.weights.tolist() == model.weights.tolist()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"k": 2, "time_unit": "seconds"}, "time_unit must be 'batches' or 'points', got 'seconds'"),
    ({"k": 2, "decay_factor": 0.5, "half_life": 2}, "give decay_factor or half_life, not both"),
    ({"k": 2, "decay_factor": 1.5}, "decay_factor must be a number between 0 and 1, got 1.5"),
    ({"k": 2, "decay_factor": "0.5"}, "decay_factor must be a number between 0 and 1, got '0.5'"),
    ({"k": 2, "half_life": 0}, "half_life must be a positive finite number, got 0"),
    ({"k": 2, "half_life": math.inf}, "half_life must be a positive finite number, got inf"),
    ({}, "k (the number of clusters) is required without centres"),
    ({"k": 0}, "k must be an integer >= 1, got 0"),
    ({"k": 2, "dim": 0}, "dim must be an integer >= 1, got 0"),
    ({"k": 2, "weights": [1, 1]}, "weights need centres"),
    ({"k": 3, "centres": [[0, 0], [1, 1]]}, "k is 3 but 2 centres were given"),
    ({"centres": [[0, 0], [1, 1]], "weights": [1]}, "weights must hold one weight per centre (2), got 1"),
    ({"centres": [[0, 0], [1, 1]], "weights": [1, -1]}, "weights must be 0 or more"),
    ({"centres": [[0, float("nan")]]}, "centres must be finite numbers"),
    ({"centres": [[0, 1], [2]]}, "centres must be a list of points"),
    ({"k": 2, "init_weight": -1}, "init_weight must be a finite number >= 0, got -1"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError) as caught:
        StreamingKMeans(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(("points", "message"), [
    ([[1, 2, 3]], "points must have 2 coordinates, got 3"),
    ([[1, 2], [3, float("nan")]], "points must be finite numbers; point 1, coordinate 1 is nan"),
    ([[1, 2], [float("inf"), 0]], "point 1, coordinate 0 is inf"),
    ([["a", 2]], "points must be numbers"),
    ([1, 2], "points must be a 2-D array (one row a point), got shape (2,)"),
])
def test_bad_points_are_named_and_leave_the_model_unchanged(points, message):
    model = StreamingKMeans(centres=[[0, 0], [5, 5]], decay_factor=0.5)
    before = model.to_state()
    with pytest.raises(ValueError) as caught:
        model.learn_many(points)
    assert message in str(caught.value)
    assert model.to_state() == before


def test_one_point_helpers_check_their_point():
    model = StreamingKMeans(centres=[[0, 0], [5, 5]])
    assert model.predict_one([4, 4]) == 1
    with pytest.raises(ValueError, match=r"x must be one point"):
        model.predict_one([[4, 4]])
    with pytest.raises(ValueError, match=r"x must have 2 coordinates, got 1"):
        model.learn_one([4])
    with pytest.raises(ValueError, match=r"no centres yet"):
        StreamingKMeans(k=2).predict_one([1.0])


def test_bad_states_are_named():
    state = StreamingKMeans(k=2, dim=1).to_state()
    with pytest.raises(ValueError, match=r"not a streaming_kmeans state"):
        StreamingKMeans.from_state({**state, "model": "dpmeans"})
    with pytest.raises(ValueError, match=r"lacks weights"):
        StreamingKMeans.from_state({key: value for key, value in state.items() if key != "weights"})
    with pytest.raises(ValueError, match=r"weights must hold one weight per centre"):
        StreamingKMeans.from_state({**state, "weights": [1.0]})


# ---------------------------------------------------------------------- forgetting, measured
def jump_stream(batch: int, batches: int) -> list[np.ndarray]:
    """Two centres, at (0, 0) and (20, 0); at 20 s (point 2000) the second jumps to (-20, 0), where the
    points go to the cluster at the origin, so the cluster left at (20, 0) gets no point any more."""
    scenario = parse_scenario({"dim": 2, "std": 1.0, "centres": [
        {"at": [0, 0]}, {"at": [20, 0], "jumps": [{"t": 20, "to": [-20, 0]}]}]})
    _, x, _ = PointsSource(scenario, seed=3, rate=100).arrays(batch * batches)
    return np.split(x, batches)


@pytest.mark.parametrize(("half_life", "time_unit", "batch"), [(3, "batches", 200), (2.5, "batches", 200),
                                                              (300, "points", 200)])
def test_the_old_position_weight_halves_every_half_life(half_life, time_unit, batch):
    jump_batch = 2000 // batch
    model = StreamingKMeans(centres=[[0, 0], [20, 0]], half_life=half_life, time_unit=time_unit)
    old = None
    history = []
    for index, points in enumerate(jump_stream(batch, jump_batch + 12)):
        if index == jump_batch:
            old = model.weights[1]
            np.testing.assert_allclose(model.centres[1], [20, 0], atol=0.2)
        model.learn_many(points)
        if old is not None:
            history.append(model.weights[1] / old)
    assert model.last_update.split is None
    unit = 1 if time_unit == "batches" else batch  # batches or points per batch
    elapsed = np.arange(1, len(history) + 1) * unit
    # measured: the share left after each batch is exactly 0.5 ** (elapsed / half_life) ...
    np.testing.assert_allclose(history, 0.5 ** (elapsed / half_life), rtol=1e-12)
    # ... so it falls to a half, a quarter, an eighth within one batch of 1, 2 and 3 half-lives
    for halvings in (1, 2, 3):
        reached = elapsed[np.argmax(np.array(history) <= 0.5 ** halvings * (1 + 1e-12))]
        assert abs(reached - halvings * half_life) <= unit, (halvings, reached)
    # and the cluster that took the jumped points followed them
    assert model.centres[0][0] < -5


# ---------------------------------------------------------------------- equivalence with MLlib
def mllib_run(spark, centres, weights, batches, decay, time_unit):
    """Centres and weights after each batch through MLlib's StreamingKMeansModel.update."""
    from pyspark.mllib.clustering import StreamingKMeansModel

    model = StreamingKMeansModel([list(map(float, c)) for c in centres], [float(w) for w in weights])
    seen = []
    for batch in batches:
        model = model.update(spark.sparkContext.parallelize(batch.tolist(), 2), decay, time_unit)
        seen.append((np.array(model.centers, dtype=float), np.array(model.clusterWeights, dtype=float)))
    return seen


def assert_same_runs(spark, model: StreamingKMeans, batches, *, expect_split: bool = False):
    mllib = mllib_run(spark, model.centres, model.weights, batches, model.decay_factor, model.time_unit)
    splits = []
    for index, (batch, (centres, weights)) in enumerate(zip(batches, mllib, strict=True)):
        model.learn_many(batch)
        splits.append(model.last_update.split)
        np.testing.assert_allclose(model.centres, centres, rtol=0, atol=1e-9, err_msg=f"centres after batch {index}")
        np.testing.assert_allclose(model.weights, weights, rtol=1e-12, atol=1e-9, err_msg=f"weights after batch {index}")
    assert any(splits) == expect_split, splits
    return splits


@pytest.mark.integration
@pytest.mark.parametrize(("decay", "time_unit"), [(1.0, "batches"), (0.5, "batches"), (0.99, "points")])
def test_same_centres_and_weights_as_mllib(spark, decay, time_unit):
    rng = np.random.default_rng(11)
    model = StreamingKMeans(k=4, dim=3, decay_factor=decay, time_unit=time_unit, seed=11, init_weight=1.0)
    sizes = [60, 0, 45, 80, 30, 70]  # an empty batch too: MLlib discounts on it as well
    means = rng.normal(scale=3, size=(4, 3))
    batches = [means[rng.integers(0, 4, size)] + rng.normal(size=(size, 3)) for size in sizes]
    assert_same_runs(spark, model, batches)


@pytest.mark.integration
def test_same_dying_cluster_and_split_as_mllib(spark):
    # every point is near the origin at first: the clusters at (3, 3) and (-3, 3) starve, die and are
    # replaced by halves of the largest, three times; the data stays near the origin, where the halves'
    # 2e-14 offsets decide each assignment the same way in both implementations
    rng = np.random.default_rng(3)
    model = StreamingKMeans(centres=[[0.0, 0.0], [3.0, 3.0], [-3.0, 3.0]], weights=[1, 1, 1], decay_factor=0.01)
    batches = [rng.normal(scale=0.5, size=(40, 2)) + (0 if index < 6 else 2) for index in range(12)]
    splits = assert_same_runs(spark, model, batches, expect_split=True)
    assert [split for split in splits if split] == [(0, 1), (0, 2), (0, 1)]


def test_half_life_gives_mllib_decay_factor():
    from pyspark.mllib.clustering import StreamingKMeans as MLlibStreamingKMeans

    for half_life in (1, 2.5, 300):
        mllib = MLlibStreamingKMeans(k=2).setHalfLife(half_life, "points")
        assert decay_from_half_life(half_life) == mllib._decayFactor
        assert StreamingKMeans(k=2, half_life=half_life, time_unit="points").decay_factor == mllib._decayFactor
