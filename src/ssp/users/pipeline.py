"""The users job's Spark steps: events in, one feature row per user, scaled and reduced, k-means for a range of
k, the k the rule chooses (:mod:`ssp.clustering.elbow`) and each cluster's profile.

Two kinds of input, one pipeline:

* ``activity``: events (``user_id``, ``event_time``, ``event`` in post/view/like/comment/share,
  ``session_id``, ``topic``), generated (:mod:`ssp.users.generate`) or read from parquet or Kafka;
* ``tweets``: the ingested posts of ``raw_tweet_dataset_<v>`` (with ``classified_tweets_<v>``'s P(AI)
  when that table exists), one row per post, clustered per author.

Each step is a function over Spark DataFrames; ``ssp.users.steps`` wires them to a run's folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ssp.clustering.elbow import KChoice, choose_k
from ssp.config import UsersConfig
from ssp.users.generate import EVENTS

KINDS = ("activity", "tweets")
ID_COLUMN = "user_id"
ACTIVITY_FEATURES = (
    "log_events", *(f"{e}_share" for e in EVENTS), "night_share", "morning_share", "evening_share", "news_share",
    "log_events_per_session",
)
TWEET_FEATURES = ("log_posts_per_day", "night_share", "morning_share", "evening_share", "retweet_share",
                  "link_share", "hashtag_share")
AI_FEATURE = "ai_share"
SMALL_ROWS = 100_000
EVENT_SCHEMA = "user_id BIGINT, event_time TIMESTAMP, event STRING, session_id BIGINT, topic STRING"


def _hour_shares(F, hour):
    return [
        F.avg((hour < 6).cast("double")).alias("night_share"),
        F.avg(((hour >= 6) & (hour < 12)).cast("double")).alias("morning_share"),
        F.avg((hour >= 18).cast("double")).alias("evening_share"),
    ]


def activity_features(events):
    """One row per user: how much they do (log of their events), what (the share of each event type), when
    (night 0-6 h, morning 6-12 h, evening 18-24 h shares, UTC), about what (news share) and in what sessions
    (log of events per session)."""
    from pyspark.sql import functions as F

    hour = F.hour("event_time")
    aggregated = events.groupBy(ID_COLUMN).agg(
        F.count(F.lit(1)).alias("events"),
        *[F.avg((F.col("event") == e).cast("double")).alias(f"{e}_share") for e in EVENTS],
        *_hour_shares(F, hour),
        F.avg((F.col("topic") == "news").cast("double")).alias("news_share"),
        F.approx_count_distinct("session_id", 0.02).alias("sessions"),
    )
    return aggregated.select(
        ID_COLUMN, "events",
        F.log1p("events").alias("log_events"),
        *[f"{e}_share" for e in EVENTS], "night_share", "morning_share", "evening_share", "news_share",
        F.log(F.col("events") / F.greatest(F.col("sessions"), F.lit(1))).alias("log_events_per_session"),
    )


def tweet_features(posts, with_ai: bool):
    """One row per author: posts per day over the table's time span (log), night/morning/evening shares, and
    the shares of their posts that are retweets, carry a link or a hashtag, and (``with_ai``) that the
    classifier called AI."""
    from pyspark.sql import functions as F

    span = posts.agg(((F.max("created_at").cast("double") - F.min("created_at").cast("double")) / 86400.0)
                     .alias("days")).first()["days"] or 0.0
    days = max(float(span), 1.0)
    hour = F.hour("created_at")
    aggregates = [
        F.count(F.lit(1)).alias("events"), *_hour_shares(F, hour),
        F.avg(F.col("is_retweet").cast("double")).alias("retweet_share"),
        F.avg((F.col("urls") > 0).cast("double")).alias("link_share"),
        F.avg((F.col("hashtags") > 0).cast("double")).alias("hashtag_share"),
    ]
    if with_ai:
        aggregates.append(F.avg(F.col("is_ai").cast("double")).alias(AI_FEATURE))
    aggregated = posts.groupBy(F.col("author").alias(ID_COLUMN)).agg(*aggregates)
    names = [n for n in TWEET_FEATURES if n != "log_posts_per_day"] + ([AI_FEATURE] if with_ai else [])
    return aggregated.select(ID_COLUMN, "events", F.log1p(F.col("events") / days).alias("log_posts_per_day"), *names)


def feature_columns(kind: str, with_ai: bool = False) -> tuple[str, ...]:
    if kind == "activity":
        return ACTIVITY_FEATURES
    return TWEET_FEATURES + ((AI_FEATURE,) if with_ai else ())


@dataclass
class Transformed:
    """The transform step's result: features with their PCA coordinates, and the fitted preprocessing."""

    frame: object  # DataFrame: id, raw features, "pca" (vector)
    preprocess: object  # PipelineModel: VectorAssembler -> StandardScaler(withMean) -> PCA
    features: tuple[str, ...]
    explained_variance: tuple[float, ...]
    users: int

    def line(self) -> str:
        return (f"transformed {self.users:,} users: {len(self.features)} features -> {len(self.explained_variance)} "
                f"principal components explaining {sum(self.explained_variance):.1%} of the variance")


def fit_preprocess(features_df, columns: tuple[str, ...], config: UsersConfig) -> Transformed:
    """VectorAssembler -> StandardScaler(withMean=True) -> PCA, with the fewest components that explain
    ``config.pca_variance`` of the variance (or ``config.pca_components`` exactly)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import PCA, StandardScaler, VectorAssembler

    features_df = features_df.cache()  # the aggregation runs once, not once per fit
    users = features_df.count()
    if users < max(config.k_max, 3):
        raise ValueError(f"clustering needs at least {max(config.k_max, 3)} users (k up to {config.k_max}), "
                         f"the input has {users}")
    stages = [VectorAssembler(inputCols=list(columns), outputCol="raw_features"),
              StandardScaler(inputCol="raw_features", outputCol="scaled", withMean=True, withStd=True)]
    scaled = Pipeline(stages=stages).fit(features_df)
    n = config.pca_components or len(columns)
    if not 1 <= n <= len(columns):
        raise ValueError(f"pca_components must be between 1 and {len(columns)} features, got {n}")
    frame = scaled.transform(features_df).cache()
    full = PCA(k=n, inputCol="scaled", outputCol="pca").fit(frame)
    variance = [float(v) for v in full.explainedVariance.toArray()]
    if not config.pca_components:
        total, n = 0.0, 0
        while n < len(variance) and total < config.pca_variance - 1e-12:
            total += variance[n]
            n += 1
        n = max(n, 2)
    pca = full if n == len(variance) else PCA(k=n, inputCol="scaled", outputCol="pca").fit(frame)
    frame.unpersist()
    from pyspark.ml import PipelineModel

    preprocess = PipelineModel(stages=[*scaled.stages, pca])
    reduced = preprocess.transform(features_df).drop("raw_features", "scaled")
    return Transformed(reduced, preprocess, tuple(columns), tuple(variance[:n]), users)


@dataclass
class Sweep:
    """k-means for each k of a range: WCSS (training cost) and silhouette per k, and the k the rule chose."""

    choice: KChoice
    models: dict = field(repr=False)  # k -> KMeansModel
    seconds: float = 0.0

    def line(self) -> str:
        return f"k-means for k = {self.choice.ks[0]}..{self.choice.ks[-1]}: {self.choice.line()}"

    def as_dict(self) -> dict:
        c = self.choice
        return {"ks": list(c.ks), "wcss": list(c.wcss), "silhouette": list(c.silhouette),
                "distances": list(c.distances), "candidates": list(c.candidates), "k": c.k, "rule": c.rule,
                "tolerance": c.tolerance, "seconds": self.seconds}


def kmeans_sweep(reduced, config: UsersConfig, progress=None) -> Sweep:
    """Spark ML KMeans (the block solver, scikit-learn's stopping rule) on the PCA coordinates for k in
    ``k_min..k_max`` (the best of ``kmeans_restarts`` fits each), WCSS and silhouette (``ClusteringEvaluator``, on a seeded sample beyond ``silhouette_sample`` rows)
    per k, and the k :func:`ssp.clustering.elbow.choose_k` picks."""
    import time

    from pyspark.ml.clustering import KMeans
    from pyspark.ml.evaluation import ClusteringEvaluator

    if config.k_min < 2 or config.k_max - config.k_min < 2:
        raise ValueError(f"the k range needs k_min >= 2 and at least 3 values, got {config.k_min}..{config.k_max}")
    start = time.monotonic()
    data = reduced.select("pca").cache()
    rows = data.count()
    variance = mean_variance(data, "pca")
    if rows < SMALL_ROWS:  # small data: one task per stage; each k-means iteration is a Spark job
        data = data.coalesce(1)
    sample = data if rows <= config.silhouette_sample else data.sample(
        fraction=config.silhouette_sample / rows, seed=config.seed).cache()
    evaluator = ClusteringEvaluator(featuresCol="pca", predictionCol="cluster", distanceMeasure="squaredEuclidean")
    ks, wcss, silhouette, models = [], [], [], {}
    for k in range(config.k_min, config.k_max + 1):
        best = None
        for restart in range(max(config.kmeans_restarts, 1)):
            model = KMeans(k=k, seed=config.seed + 7919 * restart, featuresCol="pca", predictionCol="cluster",
                           maxIter=config.kmeans_max_iter, tol=spark_tolerance(config.kmeans_tol, variance, k),
                           solver="block").fit(data)
            if best is None or model.summary.trainingCost < best.summary.trainingCost:
                best = model
        ks.append(k)
        wcss.append(float(best.summary.trainingCost))
        silhouette.append(float(evaluator.evaluate(best.transform(sample))))
        models[k] = best
        if progress:
            progress(1)
    data.unpersist()
    if sample is not data:
        sample.unpersist()
    choice = choose_k(ks, wcss, silhouette, tolerance=config.elbow_tolerance)
    return Sweep(choice, models, time.monotonic() - start)


def mean_variance(frame, column: str) -> float:
    """The mean over dimensions of the variance of ``column`` (a vector column)."""
    from pyspark.ml.stat import Summarizer

    variances = frame.select(Summarizer.metrics("variance").summary(frame[column]).alias("s")).first()["s"]
    return float(sum(variances.variance) / max(len(variances.variance), 1))


def spark_tolerance(relative: float, variance: float, k: int) -> float:
    """Spark KMeans's ``tol`` (every centre moves less than it) that stops a fit by scikit-learn's rule: the
    ``k`` centres' total squared shift below ``relative`` x the data's mean variance.

    >>> round(spark_tolerance(1e-4, 1.0, 4), 6)
    0.005
    >>> spark_tolerance(1e-4, 0.0, 4)
    0.0
    """
    return math.sqrt(relative * variance / k)


def clustering_pipeline(preprocess, kmeans_model):
    """The one fitted model to log and serve: the preprocessing stages, then the chosen k-means."""
    from pyspark.ml import PipelineModel

    return PipelineModel(stages=[*preprocess.stages, kmeans_model])


def assignments(reduced, kmeans_model):
    """id, cluster, and the first two principal components (for the scatter plot), with the raw features."""
    from pyspark.ml.functions import vector_to_array

    clustered = kmeans_model.transform(reduced)
    coordinates = vector_to_array("pca")
    return clustered.withColumn("pc1", coordinates[0]).withColumn("pc2", coordinates[1]).drop("pca")


@dataclass
class Profile:
    """Each cluster's size, its mean of every raw feature and a short name from its most distinctive ones."""

    table: object  # pandas: cluster, name, users, share, <feature means>
    zscores: object  # pandas: cluster x feature, (cluster mean - overall mean) / overall std

    def line(self) -> str:
        parts = [f"{row.cluster}: {row.name} ({row.users:,})" for row in self.table.itertuples()]
        return f"{len(self.table)} clusters: " + "; ".join(parts)


def profile(assigned, columns: tuple[str, ...]) -> Profile:
    """The profile of ``assigned`` (rows with a ``cluster`` and the raw feature columns)."""
    from pyspark.sql import functions as F

    means = (assigned.groupBy("cluster").agg(F.count(F.lit(1)).alias("users"), *[F.avg(c).alias(c) for c in columns])
             .toPandas().sort_values("cluster").reset_index(drop=True))
    overall = assigned.agg(*[F.avg(c).alias(f"mean_{c}") for c in columns],
                           *[F.stddev_pop(c).alias(f"std_{c}") for c in columns]).first().asDict()
    return profile_from_means(means, {c: overall[f"mean_{c}"] for c in columns},
                              {c: overall[f"std_{c}"] for c in columns}, columns)


def profile_from_means(means, overall_mean: dict, overall_std: dict, columns: tuple[str, ...], top: int = 2) -> Profile:
    """Name each cluster by its ``top`` features farthest from the overall mean (in standard deviations).

    >>> import pandas as pd
    >>> means = pd.DataFrame({"cluster": [0, 1], "users": [30, 10], "night_share": [0.05, 0.8],
    ...                       "view_share": [0.9, 0.2]})
    >>> p = profile_from_means(means, {"night_share": 0.24, "view_share": 0.72}, {"night_share": 0.3,
    ...                        "view_share": 0.3}, ("night_share", "view_share"))
    >>> p.table[["cluster", "name", "users", "share"]].values.tolist()
    [[0, 'low night, high view', 30, 0.75], [1, 'high night, low view', 10, 0.25]]
    """
    import pandas as pd

    z = pd.DataFrame({c: (means[c] - overall_mean[c]) / (overall_std[c] or 1.0) for c in columns})
    z.index = means["cluster"].to_numpy()
    names = []
    for _, row in z.iterrows():
        strongest = row.abs().sort_values(ascending=False, kind="stable").index[:top]
        names.append(", ".join(f"{'high' if row[c] > 0 else 'low'} {_short(c)}" for c in strongest))
    table = means.copy()
    table.insert(1, "name", names)
    table.insert(3, "share", table["users"] / table["users"].sum())
    return Profile(table, z)


def _short(feature: str) -> str:
    return feature.removesuffix("_share").removeprefix("log_")


def ari_against_truth(assigned, truth_frame) -> float:
    """The adjusted Rand index of the clusters against the planted personas (pandas truth: user_id, persona)."""
    from ssp.clustering.elbow import adjusted_rand_index

    found = assigned.select(ID_COLUMN, "cluster").toPandas().merge(truth_frame, on=ID_COLUMN)
    if found.empty:
        raise ValueError("none of the clustered users is in the truth table")
    return adjusted_rand_index(found["persona"], found["cluster"])


def log_sample_fraction(rows: int, wanted: int) -> float:
    """The fraction of ``rows`` that keeps about ``wanted``.

    >>> log_sample_fraction(1000, 100), log_sample_fraction(10, 100)
    (0.1, 1.0)
    """
    return 1.0 if rows <= wanted else math.floor(wanted / rows * 1e6) / 1e6
