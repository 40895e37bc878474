"""Fixtures that start the real services (a Kafka broker (KRaft), PostgreSQL and Spark) and find data files.

The stack runs on free ports in a temporary state folder, so tests never touch a stack a
developer has running. ``SSP_TEST_KAFKA_BOOTSTRAP`` and ``SSP_TEST_DATABASE_URL`` point the
tests at services started elsewhere instead.

The real fixture tweets and their gold labels are not in the repo: they live in ``../shared/fixtures``
beside the clone, or in ``$SSP_FIXTURES_DIR``. A test that needs them is skipped when they are absent
(a fresh clone), and fails instead with ``SSP_REQUIRE_FIXTURES=1`` (CI, which has them). The posts
written for this project are in the repo (``tests/fixtures``), so ``written_dev_path`` is always there.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

import pytest

from ssp.config import InfraConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


REPO_FIXTURES = REPO_ROOT / "tests" / "fixtures"

# The files under fixtures_dir() a test may need, with what they are (for the skip reason), and the
# fixtures that hand them out: a test using one of these is skipped before any other fixture of it
# starts services.
SAMPLE_TWEETS = ("tweets_v1/sample_200.jsonl", "real fixture tweets")
SAMPLE_GOLD = ("labelled/sample_200_gold.tsv", "real fixture gold labels")
SHARED_FIXTURES = {
    "fixture_tweets_path": (SAMPLE_TWEETS,),
    "sample_200_gold_path": (SAMPLE_GOLD,),
    "real_gold_path": (SAMPLE_TWEETS, SAMPLE_GOLD),
}


def fixtures_dir() -> Path:
    """``$SSP_FIXTURES_DIR``, else ``../shared/fixtures`` beside the repo."""
    if os.environ.get("SSP_FIXTURES_DIR"):
        return Path(os.environ["SSP_FIXTURES_DIR"])
    return REPO_ROOT.parent / "shared" / "fixtures"


def shared_fixture(relative: str, what: str) -> Path:
    """The file ``relative`` under fixtures_dir(); skips the test when it is missing, or fails it when
    ``SSP_REQUIRE_FIXTURES=1``."""
    path = fixtures_dir() / relative
    if path.is_file():
        return path
    reason = f"{what} not found: set SSP_FIXTURES_DIR to a folder with {relative} (looked for {path})"
    if os.environ.get("SSP_REQUIRE_FIXTURES") == "1":
        pytest.fail(f"{reason}; SSP_REQUIRE_FIXTURES=1 makes this a failure", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail) a test that needs a missing shared file before its fixtures start Kafka or Spark."""
    for name in getattr(item, "fixturenames", ()):
        for relative, what in SHARED_FIXTURES.get(name, ()):
            shared_fixture(relative, what)


@pytest.fixture(scope="session")
def fixture_tweets_path() -> Path:
    """``tweets_v1/sample_200.jsonl``: 200 real X API v1.1 payloads, one a line."""
    return shared_fixture(*SAMPLE_TWEETS)


@pytest.fixture(scope="session")
def sample_200_gold_path() -> Path:
    """``labelled/sample_200_gold.tsv``: id, label, kind for the 200 fixture tweets."""
    return shared_fixture(*SAMPLE_GOLD)


@pytest.fixture(scope="session")
def written_dev_path() -> Path:
    """``tests/fixtures/labelled/written_dev.tsv``: 431 posts written for this project (in the repo)."""
    return REPO_FIXTURES / "labelled" / "written_dev.tsv"


@pytest.fixture(scope="session")
def real_gold_path(fixture_tweets_path: Path, sample_200_gold_path: Path, tmp_path_factory) -> Path:
    """A JSONL of the 200 fixture tweets with their gold labels, in the gold file's order, one
    ``{"id", "label", "kind", "payload"}`` object a line (``payload``: the raw payload object)."""
    payloads = {}
    for line in fixture_tweets_path.read_bytes().splitlines():
        if line.strip():
            payload = json.loads(line)
            payloads[str(payload["id_str"])] = payload
    path = tmp_path_factory.mktemp("real-gold") / "sample_200_gold.jsonl"
    with sample_200_gold_path.open(encoding="utf-8", newline="") as gold, path.open("w", encoding="utf-8") as out:
        for row in csv.DictReader(gold, delimiter="\t"):
            if row["id"] not in payloads:
                raise ValueError(f"{sample_200_gold_path}: tweet id {row['id']} is not in {fixture_tweets_path}")
            record = {"id": row["id"], "label": int(row["label"]), "kind": row["kind"], "payload": payloads[row["id"]]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
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
        os.environ["SSP_DATABASE_URL"] = postgres.database_url  # the apps' role, password from state_dir
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
