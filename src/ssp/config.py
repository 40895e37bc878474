"""Configuration: gin files for parameters, the environment for secrets and addresses.

Each stage reads one gin-configurable settings class. Values come, lowest precedence first,
from the class defaults, ``config/default_ssp_config.gin``, any ``--gin-file`` and
``--gin-param`` given on the command line, and finally the environment for the things that
differ between machines or are secret (``SSP_DATABASE_URL``, ``SSP_KAFKA_BOOTSTRAP``,
``SSP_SPARK_MASTER``, ``SSP_STATE_DIR``, ``SSP_CACHE_DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gin

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_GIN_FILE = REPO_ROOT / "config" / "default_ssp_config.gin"


class ConfigError(ValueError):
    """A configuration value or file is wrong; the message says which and why."""


def default_state_dir() -> Path:
    """Where services keep logs and data: ``$SSP_STATE_DIR`` or ``~/.local/state/ssp``."""
    return Path(os.environ.get("SSP_STATE_DIR") or Path.home() / ".local" / "state" / "ssp")


def default_cache_dir() -> Path:
    """Where fetched jars live, outside the repo: ``$SSP_CACHE_DIR`` or ``~/.cache/ssp``."""
    return Path(os.environ.get("SSP_CACHE_DIR") or Path.home() / ".cache" / "ssp")


@gin.configurable
@dataclass
class InfraConfig:
    """The local stack: Kafka broker, PostgreSQL server and Spark session."""

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_version: str = "4.1.0"
    kafka_heap: str = "512m"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_db: str = "sparkstreamingdb"
    postgres_user: str = "ssp"
    spark_master: str = "local[*]"
    spark_version: str = "4.0.0"
    spark_kafka_clients_version: str = "3.9.0"
    spark_commons_pool2_version: str = "2.12.0"
    spark_driver_memory: str = "2g"
    spark_shuffle_partitions: int = 4

    @property
    def kafka_bootstrap(self) -> str:
        return os.environ.get("SSP_KAFKA_BOOTSTRAP") or f"{self.kafka_host}:{self.kafka_port}"

    @property
    def external_database_url(self) -> str | None:
        """A user-supplied database; when set, ssp starts no PostgreSQL of its own."""
        return os.environ.get("SSP_DATABASE_URL") or None

    @property
    def local_database_url(self) -> str:
        return (
            f"postgresql://{self.postgres_user}@{self.postgres_host}:{self.postgres_port}/"
            f"{self.postgres_db}"
        )

    @property
    def database_url(self) -> str:
        return self.external_database_url or self.local_database_url

    @property
    def resolved_spark_master(self) -> str:
        return os.environ.get("SSP_SPARK_MASTER") or self.spark_master


@gin.configurable
@dataclass
class TopicsConfig:
    """The original project's two topics: keyword-matched tweets and the whole mix."""

    ai_tweets_topic: str = "ai_tweets_topic"
    mix_tweets_topic: str = "mix_tweets_topic"
    partitions: int = 4


@gin.configurable
@dataclass
class ProducerConfig:
    source: str = "synthetic"
    seed: int = 42
    rate: float = 0.0  # tweets per second; 0 means as fast as the broker takes them
    max_records: int = 10_000
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    compression_type: str | None = None
    retries: int = 10


@gin.configurable
@dataclass
class IngestConfig:
    topic: str = "mix_tweets_topic"
    table_prefix: str = "raw_tweet_dataset"
    version: int = 0
    dead_letter_table: str = "dead_letter_tweets"
    max_record_bytes: int = 256 * 1024
    max_offsets_per_trigger: int = 50_000
    trigger_seconds: float = 1.0
    starting_offsets: str = "earliest"


def load_config(gin_files: Sequence[str | Path] = (), bindings: Sequence[str] = ()) -> None:
    """Parse the default gin file, then ``gin_files`` and ``bindings`` on top of it."""
    files = [DEFAULT_GIN_FILE] if DEFAULT_GIN_FILE.exists() else []
    for path in gin_files:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"gin file {path} does not exist")
        files.append(path)
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(f) for f in files], list(bindings))
    except (ValueError, KeyError, SyntaxError) as err:
        raise ConfigError(f"bad gin configuration ({', '.join(map(str, files))}; bindings {list(bindings)}): {err}") from err
