"""The local stack as one thing: ``ssp infra up | down | status``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ssp.config import InfraConfig, default_state_dir
from ssp.errors import database_reason
from ssp.infra.jars import fetch_jars, kafka_broker_artifacts, spark_kafka_artifacts
from ssp.infra.kafka_server import KafkaServer
from ssp.infra.postgres_server import PostgresServer
from ssp.infra.process import InfraError, port_is_open


def redact_url(url: str) -> str:
    """``url`` with any password replaced, fit for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def database_reachable(url: str) -> tuple[bool, str]:
    import psycopg2

    try:
        conn = psycopg2.connect(url, connect_timeout=3)
    except psycopg2.Error as err:
        return False, database_reason(err)
    conn.close()
    return True, "ok"


def _bootstrap_answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return port.isdigit() and port_is_open(host, int(port))


@dataclass
class LocalStack:
    config: InfraConfig
    state_dir: Path

    @classmethod
    def from_config(cls, config: InfraConfig | None = None, state_dir: Path | None = None) -> LocalStack:
        return cls(config or InfraConfig(), state_dir or default_state_dir())

    @property
    def kafka(self) -> KafkaServer:
        return KafkaServer(self.config, self.state_dir)

    @property
    def postgres(self) -> PostgresServer:
        return PostgresServer(self.config, self.state_dir)

    def fetch(self) -> list[str]:
        """Fetch every pinned jar the stack needs, so later starts work offline."""
        kafka = fetch_jars("kafka-broker", kafka_broker_artifacts(self.config))
        spark = fetch_jars("spark-kafka", spark_kafka_artifacts(self.config))
        return [f"{len(kafka)} Kafka broker jars", f"{len(spark)} Spark Kafka connector jars"]

    def up(self) -> list[str]:
        external = self.config.external_database_url
        if not external:
            self.postgres.check_socket_path()  # before anything starts
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.external_kafka:
            done = [f"using the Kafka broker at {self.config.kafka_bootstrap} (SSP_KAFKA_BOOTSTRAP)"]
        else:
            done = [self.kafka.start()]
        if external:
            ok, detail = database_reachable(external)
            if not ok:
                raise InfraError(
                    f"SSP_DATABASE_URL is set ({redact_url(external)}) but the database does not answer: {detail}. "
                    "Fix the URL or unset it to use the local PostgreSQL."
                )
            done.append(f"using the database at {redact_url(external)} (SSP_DATABASE_URL)")
        else:
            done.append(self.postgres.start())
        return done

    @property
    def external_kafka(self) -> bool:
        return bool(os.environ.get("SSP_KAFKA_BOOTSTRAP"))

    def down(self) -> list[str]:
        done = [] if self.external_kafka else [self.kafka.stop()]
        if not self.config.external_database_url:
            done.append(self.postgres.stop())
        return done

    def status(self) -> dict:
        external = self.config.external_database_url
        kafka = self.kafka
        postgres_running = (
            database_reachable(external)[0] if external else self.postgres.is_running()
        )
        return {
            "kafka_bootstrap": self.config.kafka_bootstrap,
            "database_url": redact_url(external or self.postgres.database_url),
            "spark_master": self.config.resolved_spark_master,
            "state_dir": str(self.state_dir),
            "kafka": (
                {"running": _bootstrap_answers(self.config.kafka_bootstrap), "managed_by_ssp": False}
                if self.external_kafka
                else {"running": kafka.is_running(), "managed_by_ssp": True, "pid": kafka.pid(), "log": str(kafka.log_file)}
            ),
            "postgres": {
                "running": postgres_running,
                "managed_by_ssp": not external,
                "pid": None if external else self.postgres.pid(),
            },
        }
