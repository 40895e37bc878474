"""The ingest job against real Kafka, PostgreSQL and Spark."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest

from ssp.config import IngestConfig
from ssp.kafka.admin import ensure_topic
from ssp.kafka.producer import make_producer, produce
from ssp.sources.replay import replay_payloads
from ssp.streaming.ingest import run_ingest
from ssp.tweets import parse_tweet

pytestmark = pytest.mark.integration


def _send(bootstrap: str, topic: str, payloads, partitions: int = 3) -> None:
    ensure_topic(bootstrap, topic, partitions)
    producer = make_producer(bootstrap)
    try:
        produce(payloads, producer, topic, show_progress=False)
    finally:
        producer.close()


def _ingest(spark, stack, topic: str, prefix: str, max_records: int, tmp_path, **overrides):
    config = IngestConfig(**overrides)
    return run_ingest(
        spark, infra=stack, config=config, topic=topic, table_prefix=prefix, version=0,
        max_records=max_records, checkpoint_dir=tmp_path / "checkpoint",
    )


def test_fixture_tweets_land_once_with_text_and_urls(spark, stack, db, fixture_tweets_path, unique_name, tmp_path):
    payloads = list(replay_payloads(fixture_tweets_path))
    assert all(isinstance(p, dict) for p in payloads)
    topic, prefix = unique_name("fixtures"), unique_name("raw")
    # every tweet twice: the key-based idempotent write must still keep each once
    _send(os.environ["SSP_KAFKA_BOOTSTRAP"], topic, payloads + payloads)

    result = _ingest(spark, stack, topic, prefix, 2 * len(payloads), tmp_path)

    assert result.seen == 2 * len(payloads)
    assert result.dead == 0
    with db.cursor() as cur:
        cur.execute(f"SELECT id, text, urls, hashtags, is_retweet, lang, raw FROM {prefix}_0")
        rows = {row[0]: row for row in cur.fetchall()}
    expected = {t.id: t for t in map(parse_tweet, payloads)}
    assert len(expected) == 200
    assert set(rows) == set(expected)
    for tweet_id, tweet in expected.items():
        _, text, urls, hashtags, is_retweet, lang, raw = rows[tweet_id]
        assert text == tweet.text
        assert urls == list(tweet.urls)
        assert hashtags == list(tweet.hashtags)
        assert is_retweet == tweet.is_retweet
        assert lang == tweet.lang
        assert raw["id"] == tweet_id
    assert all("t.co/" not in url for row in rows.values() for url in row[2])


def test_malformed_messages_go_to_dead_letters_and_good_ones_land(spark, stack, db, unique_name, tmp_path):
    good = [
        {"id": 1000 + i, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": f"good tweet {i}",
         "user": {"screen_name": "someone"}, "lang": "en", "entities": {"urls": [], "hashtags": []}}
        for i in range(30)
    ]
    oversized = {"id": 999, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "x" * 5000}
    bad = [
        (b"this is not json", "not_json"),
        (b'{"created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": "no id"}', "no_id"),
        (b'{"id": 5, "created_at": 12345, "text": "number date"}', "wrong_type:created_at"),
        (b'{"id": 6, "created_at": "Sun Apr 05 10:46:44 +0000 2020", "text": ["not", "a", "string"]}', "wrong_type:text"),
        (b"[1, 2, 3]", "not_object"),
        (orjson.dumps(oversized), "oversized"),
    ]
    mixed: list = list(good)
    for position, (raw, _) in zip((3, 8, 13, 18, 23, 28), bad, strict=True):
        mixed.insert(position, raw)
    topic, prefix = unique_name("mixed"), unique_name("raw")
    _send(os.environ["SSP_KAFKA_BOOTSTRAP"], topic, mixed, partitions=2)

    dead_table = unique_name("dead")
    result = _ingest(spark, stack, topic, prefix, len(mixed), tmp_path, dead_letter_table=dead_table,
                     max_record_bytes=4096)

    assert (result.inserted, result.dead) == (len(good), len(bad))
    with db.cursor() as cur:
        cur.execute(f"SELECT id FROM {prefix}_0")
        assert {row[0] for row in cur.fetchall()} == {t["id"] for t in good}
        cur.execute(f"SELECT raw_value, reason, error, kafka_topic, kafka_partition, kafka_offset, target_table "
                    f"FROM {dead_table}")
        dead = cur.fetchall()
    assert sorted((bytes(r[0]), r[1]) for r in dead) == sorted(bad)
    for _raw_value, reason, error, dead_topic, partition, offset, target in dead:
        assert dead_topic == topic and target == f"{prefix}_0"
        assert partition in (0, 1) and offset >= 0
        assert error, f"dead letter {reason} has no error message"


def _count(db, table: str) -> tuple[int, int]:
    with db.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}")
        return cur.fetchone()


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(stack, db, unique_name, tmp_path):
    from ssp.sources.synthetic import synthetic_payloads

    payloads = list(synthetic_payloads(12_000, seed=7))
    produced_ids = {int(p["data"]["id"] if "data" in p else p["id_str"]) for p in payloads}
    topic, prefix = unique_name("kill"), unique_name("raw")
    _send(os.environ["SSP_KAFKA_BOOTSTRAP"], topic, payloads, partitions=4)
    table = f"{prefix}_0"
    command = [
        sys.executable, "-m", "ssp.cli",
        "--gin-param", "IngestConfig.max_offsets_per_trigger = 1500",
        "--gin-param", "IngestConfig.trigger_seconds = 0.2",
        "--gin-param", "InfraConfig.spark_master = 'local[2]'",
        "ingest", "--topic", topic, "--table-prefix", prefix, "--version", "0",
        "--checkpoint-dir", str(tmp_path / "checkpoint"),
    ]
    rng = random.Random(3)
    kills, partial_after_kill = 0, False
    for _ in range(3):
        before = _count(db, table)[0] if kills else 0
        proc = subprocess.Popen(command + ["--until-idle", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        # wait until this run has written something, then kill it at a random moment
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                if _count(db, table)[0] > before:
                    break
            except Exception:  # the table appears with the first run
                continue
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            partial_after_kill |= 0 < _count(db, table)[0] < len(produced_ids)
        if _count(db, table)[0] >= len(produced_ids):
            break
    assert kills >= 1 and partial_after_kill, "no kill landed mid-stream; produce more tweets"

    finish = subprocess.run(command + ["--until-idle", "8"], capture_output=True, text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr[-2000:]

    total, distinct = _count(db, table)
    assert total == distinct == len(produced_ids)
    with db.cursor() as cur:
        cur.execute(f"SELECT id FROM {table}")
        assert {row[0] for row in cur.fetchall()} == produced_ids
