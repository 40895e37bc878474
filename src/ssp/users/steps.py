"""The users job's steps over a run's folder: each reads what the step before wrote there and writes its own
output, so a scheduler passes one path from step to step (``ssp users <step> --workdir PATH``).

``ingest`` -> ``manifest.json`` (+ ``events/`` for Kafka and tweet sources), ``transform`` -> ``features/``,
``preprocess/``, ``transform.json``; ``train`` -> ``sweep.json``, ``model/``, ``assignments/``;
``analyse`` -> ``profile.csv``, ``profile.json``; ``visualise`` -> ``plots/*.png``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ssp.config import UsersConfig
from ssp.users import pipeline
from ssp.users.generate import EVENTS, activity_slices, event_records
from ssp.users.store import (
    UsersInputError,
    Workdir,
    read_parquet_frame,
    remove,
    spark_url,
    write_parquet_dataset,
)

SLICE_USERS = 50_000


# ---------------------------------------------------------------- generate
@dataclass
class Generated:
    users: int
    events: int
    target: str
    truth: str | None
    seconds: float

    def line(self) -> str:
        truth = f"; truth in {self.truth}" if self.truth else ""
        return (f"generated {self.users:,} users, {self.events:,} events in {self.seconds:.1f} s "
                f"({self.users / max(self.seconds, 1e-9):,.0f} users/s) -> {self.target}{truth}")


def generate(config: UsersConfig, out: str | None = None, kafka_topic: str | None = None, bootstrap: str | None = None,
             progress=None) -> Generated:
    """``config.users`` users' events as parquet under ``out/events`` (partitioned by day) with the truth in
    ``out/truth``, or as JSON records to the Kafka topic ``kafka_topic`` (the truth still under ``out``
    when given)."""
    start = time.monotonic()
    options = dict(mean_events=config.mean_events, personas=config.personas, seed=config.seed, days=config.days)
    events_url = f"{out.rstrip('/')}/events" if out else None
    truth_url = f"{out.rstrip('/')}/truth" if out else None
    if events_url and not kafka_topic:
        remove(events_url)
    producer = None
    if kafka_topic:
        from ssp.kafka.admin import ensure_topic
        from ssp.kafka.producer import make_producer

        ensure_topic(bootstrap, kafka_topic)
        producer = make_producer(bootstrap)
    total, truths = 0, []
    try:
        for index, (events, truth) in enumerate(activity_slices(config.users, SLICE_USERS, **options)):
            if producer is not None:
                from ssp.kafka.producer import produce

                produce(event_records(events), producer, kafka_topic, show_progress=False)
            else:
                write_parquet_dataset(events_url, events, ["day"], f"part-{index:05d}")
            truths.append(truth)
            total += len(events)
            if progress:
                progress(len(truth))
    finally:
        if producer is not None:
            producer.close()
    if truth_url:
        import pandas as pd

        Workdir(out).write_frame("truth", pd.concat(truths, ignore_index=True))
    target = f"kafka topic {kafka_topic}" if kafka_topic else events_url
    return Generated(config.users, total, target, truth_url, time.monotonic() - start)


# ---------------------------------------------------------------- ingest
@dataclass
class Ingested:
    kind: str
    source: str
    rows: int
    dead: int = 0

    def line(self) -> str:
        dead = f", {self.dead:,} bad records in dead_letters/" if self.dead else ""
        what = "posts" if self.kind == "tweets" else "events"
        return f"ingested {self.rows:,} {what} from {self.source}{dead}"


def ingest(spark, work: Workdir, source: str, truth: str | None = None, bootstrap: str | None = None,
           database_url: str | None = None) -> Ingested:
    """Record (and for Kafka and the tweet tables, copy) the input of a run: ``source`` is a parquet path or
    URL (a folder ``generate`` wrote, its ``events/``), ``kafka:<topic>`` or ``tweets:<version>``."""
    if source.startswith("kafka:"):
        result = _ingest_kafka(spark, work, source[len("kafka:"):], bootstrap)
    elif source.startswith("tweets:"):
        result = _ingest_tweets(spark, work, source[len("tweets:"):], database_url)
    else:
        events_url = source.rstrip("/")
        if work_exists(f"{events_url}/events"):
            truth = truth or (f"{events_url}/truth" if work_exists(f"{events_url}/truth") else None)
            events_url = f"{events_url}/events"
        frame = read_events(spark, events_url)
        result = Ingested("activity", events_url, frame.count())
        work.write_json("manifest.json", {"kind": "activity", "events": events_url, "truth": truth,
                                          "source": source, "with_ai": False})
        return result
    return result


def work_exists(url: str) -> bool:
    from ssp.users.store import filesystem

    fs, path = filesystem(url)
    return fs.exists(path)


def read_events(spark, url: str):
    """The activity events at ``url`` (parquet) as a Spark DataFrame with the event columns."""
    from pyspark.sql import functions as F

    direct = spark_url(url)
    if direct is not None:
        try:
            frame = spark.read.parquet(direct)
        except Exception as err:  # AnalysisException: path does not exist, not parquet
            raise UsersInputError(f"cannot read events from {url}: {str(err).splitlines()[0]}") from err
    else:
        frame = spark.createDataFrame(read_parquet_frame(url))
    missing = [c for c in ("user_id", "event_time", "event", "session_id", "topic") if c not in frame.columns]
    if missing:
        raise UsersInputError(f"events at {url} lack the columns {', '.join(missing)} (have: {', '.join(frame.columns)})")
    return frame.select(F.col("user_id").cast("bigint"), F.col("event_time").cast("timestamp"),
                        F.col("event").cast("string"), F.col("session_id").cast("bigint"),
                        F.col("topic").cast("string"))


def _write_spark(frame, work: Workdir, name: str) -> None:
    direct = spark_url(work.path(name))
    if direct is not None:
        frame.write.mode("overwrite").parquet(direct)
    else:
        work.write_frame(name, frame.toPandas())


def _ingest_kafka(spark, work: Workdir, topic: str, bootstrap: str | None) -> Ingested:
    """The topic's records from the earliest to the latest offset; the ones that are not events go to
    ``dead_letters/`` with the reason (not_json, missing:<field>, bad_event)."""
    from pyspark.sql import functions as F

    from ssp.kafka.admin import topic_end_offsets

    if not topic:
        raise UsersInputError("kafka: needs a topic, e.g. kafka:user_activity_topic")
    if not topic_end_offsets(bootstrap, topic):
        raise UsersInputError(f"kafka topic {topic} does not exist or has no partitions at {bootstrap}")
    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("subscribe", topic)
           .option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    parsed = raw.select("partition", "offset", F.col("value").cast("string").alias("raw_value"),
                        F.from_json(F.col("value").cast("string"), pipeline.EVENT_SCHEMA.replace(
                            "event_time TIMESTAMP", "event_time STRING")).alias("e"))
    # from_json reads text that is not JSON as a row of nulls: an object has keys, anything else has none
    reason = (F.when(F.expr("json_object_keys(raw_value)").isNull(), "not_json")
              .when(F.col("e.user_id").isNull(), "missing:user_id")
              .when(F.to_timestamp("e.event_time").isNull(), "missing:event_time")
              .when(~F.col("e.event").isin(*EVENTS), "bad_event"))
    checked = parsed.withColumn("reason", reason).cache()
    good = checked.where(F.col("reason").isNull()).select(
        "e.user_id", F.to_timestamp("e.event_time").alias("event_time"), "e.event",
        F.coalesce("e.session_id", F.lit(0).cast("bigint")).alias("session_id"),
        F.coalesce("e.topic", F.lit("")).alias("topic"))
    dead = checked.where(F.col("reason").isNotNull()).select("partition", "offset", "reason", "raw_value")
    _write_spark(good, work, "events")
    dead_count = dead.count()
    if dead_count:
        _write_spark(dead, work, "dead_letters")
    rows = good.count()
    checked.unpersist()
    work.write_json("manifest.json", {"kind": "activity", "events": work.path("events"), "truth": None,
                                      "source": f"kafka:{topic}", "with_ai": False, "dead_letters": dead_count})
    return Ingested("activity", f"kafka topic {topic}", rows, dead_count)


def _ingest_tweets(spark, work: Workdir, version: str, database_url: str | None) -> Ingested:
    """The posts of ``raw_tweet_dataset_<v>`` (author, time, retweet, links, hashtags), with
    ``classified_tweets_<v>``'s is_ai when that table exists; posts without an author are left out (counted)."""
    import pandas as pd
    from sqlalchemy import text

    from ssp.config import DatasetConfig
    from ssp.errors import reported
    from ssp.storage.postgres import make_engine, table_exists
    from ssp.storage.tables import CLASSIFIED_TABLE_PREFIX, versioned_table_name

    raw = versioned_table_name(DatasetConfig().raw_table_prefix, version)
    classified = versioned_table_name(CLASSIFIED_TABLE_PREFIX, version)
    engine = make_engine(database_url)
    try:
        with reported(f"reading {raw}"):
            if not table_exists(engine, raw):
                raise UsersInputError(f"table {raw} does not exist: ingest tweets for version {version} first "
                                      "(`ssp ingest --version ...`)")
            with_ai = table_exists(engine, classified)
            ai = ", c.is_ai" if with_ai else ""
            join = f" LEFT JOIN {classified} c ON c.id = r.id" if with_ai else ""
            query = (f"SELECT r.user_screen_name AS author, r.created_at, r.is_retweet, cardinality(r.urls) AS urls, "
                     f"cardinality(r.hashtags) AS hashtags{ai} FROM {raw} r{join}")
            with engine.connect() as conn:
                posts = pd.read_sql(text(query), conn)
    finally:
        engine.dispose()
    if with_ai:
        posts["is_ai"] = posts["is_ai"].fillna(False).astype(bool)
    no_author = int(posts["author"].isna().sum())
    posts = posts[posts["author"].notna()].reset_index(drop=True)
    if posts.empty:
        raise UsersInputError(f"table {raw} has no posts with an author")
    posts["created_at"] = pd.to_datetime(posts["created_at"], utc=True)
    work.write_frame("events", posts)
    work.write_json("manifest.json", {"kind": "tweets", "events": work.path("events"), "truth": None,
                                      "source": f"tweets:{raw}" + (f"+{classified}" if with_ai else ""),
                                      "with_ai": bool(with_ai), "without_author": no_author})
    return Ingested("tweets", raw + (f" (+ {classified})" if with_ai else ""), len(posts))


# ---------------------------------------------------------------- transform, train, analyse
def manifest(work: Workdir) -> dict:
    return work.read_json("manifest.json", step="ingest")


def features_of(spark, work: Workdir, meta: dict):
    """The per-user (or per-author) feature rows of the run's input, and their column names."""
    if meta["kind"] == "tweets":
        from pyspark.sql import functions as F

        posts = spark.createDataFrame(work.read_frame("events", step="ingest"))
        posts = posts.withColumn("created_at", F.col("created_at").cast("timestamp"))
        return pipeline.tweet_features(posts, meta["with_ai"]), pipeline.feature_columns("tweets", meta["with_ai"])
    events = read_events(spark, meta["events"])
    return pipeline.activity_features(events), pipeline.feature_columns("activity")


def transform(spark, work: Workdir, config: UsersConfig) -> pipeline.Transformed:
    """Aggregate per user, fit scaling and PCA; writes ``features/``, ``preprocess/`` and ``transform.json``."""
    from pyspark.ml.functions import vector_to_array

    meta = manifest(work)
    features, columns = features_of(spark, work, meta)
    with with_reported_values():
        result = pipeline.fit_preprocess(features, columns, config)
    result.frame = result.frame.cache()
    work.write_frame("features", result.frame.withColumn("pca", vector_to_array("pca")).toPandas())
    with work.local_copy_target("preprocess") as target:
        result.preprocess.write().overwrite().save(target)
    work.write_json("transform.json", {"features": list(columns), "explained_variance": list(result.explained_variance),
                                       "users": result.users, "kind": meta["kind"]})
    return result


def with_reported_values():
    from ssp.errors import reported

    return reported("clustering users", ValueError)


def reduced_frame(spark, work: Workdir):
    """``features/`` back as a Spark DataFrame with its ``pca`` vector column."""
    from pyspark.ml.functions import array_to_vector

    frame = spark.createDataFrame(work.read_frame("features", step="transform"))
    return frame.withColumn("pca", array_to_vector("pca"))


def train(spark, work: Workdir, config: UsersConfig, progress=None, reduced=None, preprocess=None):
    """k-means for each k, the chosen k; writes ``sweep.json``, ``model/`` (the whole fitted pipeline) and
    ``assignments/``. Returns the sweep, the fitted pipeline and the assignments (a Spark DataFrame)."""
    from pyspark.ml import PipelineModel

    reduced = reduced if reduced is not None else reduced_frame(spark, work)
    if preprocess is None:
        with work.local_copy_source("preprocess", step="transform") as source:
            preprocess = PipelineModel.load(source)
    with with_reported_values():
        sweep = pipeline.kmeans_sweep(reduced, config, progress)
    chosen = sweep.models[sweep.choice.k]
    model = pipeline.clustering_pipeline(preprocess, chosen)
    with work.local_copy_target("model") as target:
        model.write().overwrite().save(target)
    assigned = pipeline.assignments(reduced, chosen).cache()
    work.write_frame("assignments", assigned.toPandas())
    work.write_json("sweep.json", sweep.as_dict())
    return sweep, model, assigned


@dataclass
class Analysed:
    profile: pipeline.Profile
    ari: float | None

    def line(self) -> str:
        ari = f"; ARI against the planted personas {self.ari:.3f}" if self.ari is not None else ""
        return self.profile.line() + ari


def analyse(spark, work: Workdir, assigned=None) -> Analysed:
    """Cluster sizes, feature means and names (``profile.csv``, ``profile.json``), and the ARI against the
    truth when the input has one."""
    meta = manifest(work)
    columns = tuple(work.read_json("transform.json", step="transform")["features"])
    if assigned is None:
        assigned = spark.createDataFrame(work.read_frame("assignments", step="train"))
    result = pipeline.profile(assigned, columns)
    ari = None
    if meta.get("truth"):
        ari = pipeline.ari_against_truth(assigned, read_parquet_frame(meta["truth"]))
    fs_table = result.table
    from ssp.users.store import filesystem

    fs, path = filesystem(work.path("profile.csv"))
    with fs.open(path, "w") as out:
        fs_table.to_csv(out, index=False, float_format="%.6g")
    work.write_json("profile.json", {"clusters": fs_table.to_dict(orient="records"),
                                     "zscores": {str(k): v for k, v in result.zscores.to_dict(orient="index").items()},
                                     "ari": ari})
    return Analysed(result, ari)
