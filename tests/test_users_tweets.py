"""``ssp users run --from-tweets``: the authors of the 200 fixture tweets, ingested through the real stack
(Kafka -> Spark Structured Streaming -> PostgreSQL), one feature row per author, clustered like users."""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from ssp.config import IngestConfig, UsersConfig
from ssp.kafka.admin import ensure_topic
from ssp.kafka.producer import make_producer, produce
from ssp.sources.replay import replay_payloads
from ssp.streaming.ingest import run_ingest
from ssp.tweets import parse_tweet

pytestmark = pytest.mark.integration


def test_from_tweets_gives_one_row_per_author_and_clusters_them(spark, stack, fixture_tweets_path, unique_name,
                                                                  tmp_path):
    from ssp.users import pipeline, steps
    from ssp.users.store import Workdir, read_parquet_frame

    payloads = list(replay_payloads(fixture_tweets_path))
    bootstrap, topic = os.environ["SSP_KAFKA_BOOTSTRAP"], unique_name("users_tweets")
    version = random.randint(10**6, 10**7)  # raw_tweet_dataset_<version> of this test only
    ensure_topic(bootstrap, topic, 2)
    producer = make_producer(bootstrap)
    try:
        produce(payloads, producer, topic, show_progress=False)
    finally:
        producer.close()
    run_ingest(spark, infra=stack, config=IngestConfig(), topic=topic, table_prefix="raw_tweet_dataset",
               version=version, max_records=len(payloads), checkpoint_dir=tmp_path / "checkpoint")

    tweets = {t.id: t for t in map(parse_tweet, payloads)}
    posts_per_author = Counter(t.user_screen_name for t in tweets.values() if t.user_screen_name)
    work = Workdir(tmp_path / "work")
    ingested = steps.ingest(spark, work, f"tweets:{version}", database_url=stack.database_url)
    assert ingested.kind == "tweets"
    assert ingested.rows == sum(posts_per_author.values())
    meta = steps.manifest(work)
    assert meta["with_ai"] is False  # no classified_tweets_<version>
    assert meta["without_author"] == len(tweets) - ingested.rows

    features, columns = steps.features_of(spark, work, meta)
    rows = features.toPandas()
    assert columns == pipeline.TWEET_FEATURES
    assert len(rows) == len(posts_per_author) and rows["user_id"].is_unique
    assert dict(zip(rows["user_id"], rows["events"], strict=True)) == dict(posts_per_author)
    retweets = Counter(t.user_screen_name for t in tweets.values() if t.user_screen_name and t.is_retweet)
    links = Counter(t.user_screen_name for t in tweets.values() if t.user_screen_name and t.urls)
    for row in rows.itertuples():
        assert row.retweet_share == pytest.approx(retweets[row.user_id] / posts_per_author[row.user_id])
        assert row.link_share == pytest.approx(links[row.user_id] / posts_per_author[row.user_id])
        assert 0 <= row.night_share + row.morning_share + row.evening_share <= 1

    # and the authors are clustered the same way as users
    config = UsersConfig(k_min=2, k_max=6, kmeans_restarts=1)
    transformed = steps.transform(spark, work, config)
    sweep, _, assigned = steps.train(spark, work, config, reduced=transformed.frame,
                                     preprocess=transformed.preprocess)
    analysed = steps.analyse(spark, work, assigned)
    assert transformed.users == len(posts_per_author)
    assert 2 <= sweep.choice.k <= 6
    assert analysed.profile.table["users"].sum() == len(posts_per_author)
    assert analysed.ari is None
    assert len(read_parquet_frame(work.path("assignments"))) == len(posts_per_author)
