"""Fixtures that start the real services: a Kafka broker (KRaft), PostgreSQL and Spark.

The stack runs on free ports in a temporary state folder, so tests never touch a stack a
developer has running. ``SSP_TEST_KAFKA_BOOTSTRAP`` and ``SSP_TEST_DATABASE_URL`` point the
tests at services started elsewhere instead.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from ssp.config import InfraConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


def fixtures_dir() -> Path:
    if os.environ.get("SSP_FIXTURES_DIR"):
        return Path(os.environ["SSP_FIXTURES_DIR"])
    return REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixture_tweets_path() -> Path:
    path = fixtures_dir() / "tweets_v1" / "sample_200.jsonl"
    if not path.exists():
        pytest.fail(f"fixture file {path} is missing; CI clones the repo with shared/ beside it")
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """A running Kafka broker and PostgreSQL database; yields the InfraConfig that reaches them."""
    from ssp.infra.kafka_server import KafkaServer
    from ssp.infra.postgres_server import PostgresServer
    from ssp.infra.process import free_port

    state_dir = tmp_path_factory.mktemp("ssp-state")
    config = InfraConfig(
        kafka_port=free_port(), kafka_controller_port=free_port(), postgres_port=free_port(),
        spark_master="local[2]", spark_driver_memory="1g", spark_shuffle_partitions=2,
    )
    kafka = postgres = None
    saved = {k: os.environ.get(k) for k in ("SSP_KAFKA_BOOTSTRAP", "SSP_DATABASE_URL", "SSP_STATE_DIR")}
    if os.environ.get("SSP_TEST_KAFKA_BOOTSTRAP"):
        os.environ["SSP_KAFKA_BOOTSTRAP"] = os.environ["SSP_TEST_KAFKA_BOOTSTRAP"]
    else:
        kafka = KafkaServer(config, state_dir)
        kafka.start()
        os.environ["SSP_KAFKA_BOOTSTRAP"] = kafka.bootstrap
    if os.environ.get("SSP_TEST_DATABASE_URL"):
        os.environ["SSP_DATABASE_URL"] = os.environ["SSP_TEST_DATABASE_URL"]
    else:
        postgres = PostgresServer(config, state_dir)
        postgres.start()
        os.environ["SSP_DATABASE_URL"] = config.local_database_url
    os.environ["SSP_STATE_DIR"] = str(state_dir)
    try:
        yield config
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def spark(stack):
    from ssp.infra.spark import spark_session

    session = spark_session("ssp-tests", stack, {"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture
def db(stack):
    """A psycopg2 connection to the test database (autocommit)."""
    import psycopg2

    conn = psycopg2.connect(stack.database_url)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def unique_name():
    """A fresh lower-case identifier for topics and tables, so tests do not see each other's data."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:10]}"
