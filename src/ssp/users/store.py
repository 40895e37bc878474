"""Where the users job reads and writes: local paths or any fsspec URL, and the layout of a run's folder.

A run's folder (the "workdir") holds every step's output under a fixed name, so the steps (and the
Airflow tasks that run them) pass one path between them, never data:

>>> work = Workdir("/tmp/run-1")
>>> work.path("features"), work.path("plots", "elbow.png")
('/tmp/run-1/features', '/tmp/run-1/plots/elbow.png')
>>> Workdir("memory://runs/a/").path("profile.csv")
'memory://runs/a/profile.csv'
>>> is_local("/tmp/x"), is_local("file:///tmp/x"), is_local("s3://bucket/x")
(True, True, False)
>>> spark_url("s3://bucket/events"), spark_url("file:///tmp/e"), spark_url("memory://x")
('s3a://bucket/events', '/tmp/e', None)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssp.errors import SspError

# URL schemes Spark's Hadoop layer reads itself (given its connector jars); others go through fsspec
SPARK_SCHEMES = ("hdfs", "s3a", "gs", "abfs", "abfss", "wasb", "wasbs")


class UsersInputError(SspError, ValueError):
    """An input of the users job is missing or not what a step needs; the message names it."""


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def spark_url(url: str) -> str | None:
    """``url`` as Spark reads it itself, or None when only fsspec can (e.g. ``memory://``)."""
    if is_local(url):
        return local_path(url)
    scheme = url.split("://", 1)[0]
    if scheme == "s3":
        return "s3a://" + url.split("://", 1)[1]
    return url if scheme in SPARK_SCHEMES else None


def filesystem(url: str):
    """The fsspec filesystem of ``url`` and the path within it (credentials from the environment)."""
    import fsspec

    return fsspec.core.url_to_fs(url)


class Workdir:
    """The folder of one run; ``path(*parts)`` names a file or folder in it."""

    def __init__(self, url: str | Path) -> None:
        self.url = str(url).rstrip("/")

    def path(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    def exists(self, *parts: str) -> bool:
        fs, path = filesystem(self.path(*parts))
        return fs.exists(path)

    def require(self, *parts: str, step: str) -> str:
        """The path of ``parts``, or a clear error naming the step that writes it."""
        if not self.exists(*parts):
            raise UsersInputError(f"{self.path(*parts)} does not exist: run `ssp users {step} --workdir {self.url}` "
                                  "first")
        return self.path(*parts)

    def write_json(self, name: str, value: Any) -> str:
        fs, path = filesystem(self.path(name))
        fs.makedirs(fs._parent(path), exist_ok=True)
        with fs.open(path, "w") as out:
            json.dump(value, out, indent=2, sort_keys=True)
        return self.path(name)

    def read_json(self, name: str, step: str) -> Any:
        fs, path = filesystem(self.require(name, step=step))
        with fs.open(path, "r") as handle:
            return json.load(handle)

    def write_frame(self, name: str, frame) -> str:
        """A pandas frame as one parquet file ``name/part-0.parquet`` (replacing what was there)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fs, path = filesystem(self.path(name))
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path}/part-0.parquet", "wb") as out:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
        return self.path(name)

    def read_frame(self, name: str, step: str):
        return read_parquet_frame(self.require(name, step=step))

    @contextmanager
    def local_copy_target(self, name: str) -> Iterator[str]:
        """A local folder to save into (a Spark model); copied to ``name`` in the workdir afterwards."""
        if is_local(self.url):
            target = local_path(self.path(name))
            shutil.rmtree(target, ignore_errors=True)
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            yield target
            return
        with tempfile.TemporaryDirectory(prefix="ssp-users-") as tmp:
            yield f"{tmp}/{name}"
            fs, path = filesystem(self.path(name))
            fs.put(f"{tmp}/{name}", path, recursive=True)

    @contextmanager
    def local_copy_source(self, name: str, step: str) -> Iterator[str]:
        """``name`` as a local folder (a Spark model to load)."""
        url = self.require(name, step=step)
        if is_local(url):
            yield local_path(url)
            return
        with tempfile.TemporaryDirectory(prefix="ssp-users-") as tmp:
            fs, path = filesystem(url)
            fs.get(path, f"{tmp}/{name}", recursive=True)
            yield f"{tmp}/{name}"


def read_parquet_frame(url: str):
    """A parquet file or (partitioned) folder at ``url`` as a pandas frame."""
    import pyarrow.dataset as ds

    fs, path = filesystem(url)
    if not fs.exists(path):
        raise UsersInputError(f"{url} does not exist")
    return ds.dataset(path, filesystem=fs, format="parquet", partitioning="hive").to_table().to_pandas()


def write_parquet_dataset(url: str, frame, partition_cols: list[str], basename: str) -> None:
    """Append ``frame`` to the parquet dataset at ``url``, partitioned by ``partition_cols``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = filesystem(url)
    fs.makedirs(path, exist_ok=True)
    pq.write_to_dataset(pa.Table.from_pandas(frame, preserve_index=False), path, filesystem=fs,
                        partition_cols=partition_cols, basename_template=basename + "-{i}.parquet",
                        existing_data_behavior="overwrite_or_ignore")


def remove(url: str) -> None:
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
