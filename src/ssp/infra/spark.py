"""The one SparkSession factory: Kafka connector jars of the same Spark version, master from config.

``local[*]`` is the default; a ``spark://``, ``yarn`` or ``k8s://`` master works unchanged because
the connector jars go through ``spark.jars``, which Spark ships to the executors itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ssp.config import InfraConfig
from ssp.infra.jars import fetch_jars, spark_kafka_artifacts
from ssp.infra.process import require_java17


def spark_session(app_name: str, config: InfraConfig | None = None, extra_conf: dict[str, str] | None = None):
    """Build (or return the running) SparkSession for ``app_name``."""
    config = config or InfraConfig()
    require_java17()
    master = config.resolved_spark_master
    if master.startswith("local"):
        # local Python workers must run this interpreter, with ssp and its packages installed
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    else:
        # on a cluster the executors' Python may live elsewhere; a PYSPARK_PYTHON set by the user wins
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    jars = fetch_jars("spark-kafka", spark_kafka_artifacts(config))
    log_config = Path(__file__).with_name("spark-log4j2.properties")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.driver.memory", config.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(config.spark_shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "true")
        # the checkpoints (offset and commit logs, state store files) written through Hadoop's FileSystem
        # API, not its FileContext API, which on the local file system forks a `chmod` from the driver JVM
        # for every file it creates and a `readlink` for every rename: 60-250 ms of a busy machine's
        # micro-batch, 15-40 ms this way (README, video benchmark). Both write a temporary file and rename it.
        .config("spark.sql.streaming.checkpointFileManagerClass",
                "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log_config}")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("SSP_SPARK_LOG_LEVEL", "WARN"))
    return session
