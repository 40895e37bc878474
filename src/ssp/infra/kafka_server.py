"""A single-node Apache Kafka broker in KRaft mode (no ZooKeeper), from the official jars."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from ssp.config import InfraConfig
from ssp.infra.jars import fetch_jars, kafka_broker_artifacts
from ssp.infra.process import (
    InfraError,
    ensure_port_free,
    port_is_open,
    read_pid,
    require_java17,
    stop_pid,
    wait_until,
)

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
"""


class KafkaServer:
    """Start, stop and inspect the local broker whose files live in ``state_dir/kafka``."""

    def __init__(self, config: InfraConfig, state_dir: Path):
        self.config = config
        self.dir = state_dir / "kafka"
        self.data_dir = self.dir / "data"
        self.pid_file = self.dir / "kafka.pid"
        self.log_file = self.dir / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.config.kafka_host}:{self.config.kafka_port}"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def is_running(self) -> bool:
        return self.pid() is not None and port_is_open(self.config.kafka_host, self.config.kafka_port)

    def _properties(self) -> str:
        c = self.config
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{c.kafka_host}:{c.kafka_controller_port}",
                f"listeners=PLAINTEXT://{c.kafka_host}:{c.kafka_port},CONTROLLER://{c.kafka_host}:{c.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{c.kafka_host}:{c.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=4",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "message.max.bytes=2097152",
                "",
            ]
        )

    def start(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return what was done."""
        if self.is_running():
            return f"Kafka already running on {self.bootstrap} (pid {self.pid()})"
        java = require_java17()
        c = self.config
        ensure_port_free(c.kafka_host, c.kafka_port, "Kafka", "InfraConfig.kafka_port")
        ensure_port_free(c.kafka_host, c.kafka_controller_port, "Kafka's controller", "InfraConfig.kafka_controller_port")
        jars = fetch_jars("kafka-broker", kafka_broker_artifacts(c))
        classpath = ":".join(str(j) for j in jars)
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        props.write_text(self._properties())
        log_config = self.dir / "log4j2.properties"
        log_config.write_text(_LOG4J2.format(log=self.log_file))
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            fmt = subprocess.run(
                [java, "-cp", classpath, f"-Dlog4j2.configurationFile={log_config}",
                 "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise InfraError(f"formatting Kafka's storage in {self.data_dir} failed: {fmt.stderr.strip()[-500:]}")
        with open(self.dir / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                [java, f"-Xmx{c.kafka_heap}", f"-Xms{c.kafka_heap}", "-XX:+UseG1GC",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log_config}",
                 "-cp", classpath, "kafka.Kafka", str(props)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")

        def ready() -> bool:
            if proc.poll() is not None:
                raise InfraError(
                    f"Kafka exited with code {proc.returncode} while starting; see {self.log_file} "
                    f"and {self.dir / 'stdout.log'}"
                )
            return port_is_open(c.kafka_host, c.kafka_port) and _broker_answers(self.bootstrap)

        wait_until(ready, timeout, f"Kafka on {self.bootstrap}", self.log_file)
        return f"Kafka {c.kafka_version} (KRaft) started on {self.bootstrap} (pid {proc.pid}), logs in {self.dir}"

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "Kafka is not running"
        stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)
        return f"Kafka stopped (pid {pid})"


def _kafka_cluster_id() -> str:
    # Kafka cluster ids are 16 random bytes in url-safe base64 without padding; one may start
    # with "-", which is why the caller passes it as --cluster-id=ID, never as a separate argument.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _broker_answers(bootstrap: str) -> bool:
    """Whether the broker answers a metadata request within 3 s (quietly: a broker still starting is no error)."""
    from ssp.kafka.admin import KafkaUnavailableError, check_broker

    try:
        check_broker(bootstrap, timeout=3)
        return True
    except KafkaUnavailableError:
        return False
