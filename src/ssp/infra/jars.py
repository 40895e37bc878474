"""Pinned JVM jars fetched from Maven Central by Maven itself, cached outside the repo.

Maven resolves each artifact with ``--strict-checksums``, so a jar whose checksum does not
match the repository's is refused rather than used. Each jar set gets its own folder in the
cache, named after its coordinates, with a stamp file written only once the copy is complete.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ssp.config import InfraConfig, default_cache_dir
from ssp.errors import SspError


class JarFetchError(SspError, RuntimeError):
    """Maven could not fetch a jar set; the message says what to check."""


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str
    # False pins exactly this jar: its transitive dependencies are either listed
    # separately or already on the classpath (pyspark ships Spark's own jars).
    transitive: bool = True

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


def kafka_broker_artifacts(config: InfraConfig) -> list[Artifact]:
    """The Apache Kafka broker (KRaft) and a log4j2 binding so it writes its own log file."""
    return [
        Artifact("org.apache.kafka", "kafka_2.13", config.kafka_version),
        Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
    ]


def spark_kafka_artifacts(config: InfraConfig) -> list[Artifact]:
    """Spark's Kafka source of the same Spark version, with what it needs beyond pyspark's jars."""
    return [
        Artifact("org.apache.spark", "spark-sql-kafka-0-10_2.13", config.spark_version, transitive=False),
        Artifact("org.apache.spark", "spark-token-provider-kafka-0-10_2.13", config.spark_version, transitive=False),
        Artifact("org.apache.kafka", "kafka-clients", config.spark_kafka_clients_version, transitive=False),
        Artifact("org.apache.commons", "commons-pool2", config.spark_commons_pool2_version, transitive=False),
    ]


def _pom(artifacts: list[Artifact]) -> str:
    deps = []
    for a in artifacts:
        exclusions = (
            ""
            if a.transitive
            else "<exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>"
        )
        deps.append(
            f"<dependency><groupId>{escape(a.group)}</groupId><artifactId>{escape(a.artifact)}</artifactId>"
            f"<version>{escape(a.version)}</version>{exclusions}</dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>ssp.local</groupId><artifactId>ssp-jars</artifactId><version>1</version><packaging>pom</packaging>"
        f"<dependencies>{''.join(deps)}</dependencies></project>\n"
    )


def jar_set_dir(name: str, artifacts: list[Artifact], cache_dir: Path | None = None) -> Path:
    digest = hashlib.sha256("\n".join(a.coordinates + str(a.transitive) for a in artifacts).encode()).hexdigest()[:12]
    return (cache_dir or default_cache_dir()) / "jars" / f"{name}-{digest}"


def fetch_jars(name: str, artifacts: list[Artifact], cache_dir: Path | None = None) -> list[Path]:
    """Return the jar files of ``artifacts``, fetching them with Maven the first time."""
    folder = jar_set_dir(name, artifacts, cache_dir)
    libs = folder / "libs"
    stamp = folder / "complete"
    if stamp.exists():
        return sorted(libs.glob("*.jar"))
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarFetchError(
            "Maven ('mvn') is not on the PATH; ssp uses it to fetch the pinned Kafka and Spark jars. "
            "Install it (Debian/Ubuntu: apt-get install maven) and try again."
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pom.xml").write_text(_pom(artifacts))
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [
        mvn, "-B", "-q", "--strict-checksums", "-f", str(folder / "pom.xml"),
        "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line][:3]
        raise JarFetchError(
            f"jar download failed for {name} ({', '.join(a.coordinates for a in artifacts)}): "
            + (" | ".join(errors) or f"mvn exited with {result.returncode}")
            + "\nCheck that this machine reaches Maven Central (proxy settings in ~/.m2/settings.xml), then rerun."
        )
    jars = sorted(libs.glob("*.jar"))
    if not jars:
        raise JarFetchError(f"Maven reported success for {name} but copied no jars into {libs}")
    stamp.write_text("\n".join(j.name for j in jars) + "\n")
    return jars
