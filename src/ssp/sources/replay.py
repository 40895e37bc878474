"""Replay tweets recorded earlier: a JSONL file, a gzipped one, or a folder of them.

``path`` may be

* a JSONL file (``.jsonl``, ``.ndjson`` or any name not ending in ``.json``): one payload
  a line, blank lines skipped;
* a ``.jsonl.gz`` file: the same, gzip-compressed;
* a ``.json`` (or ``.json.gz``) file: one payload, or a JSON array of payloads;
* a folder: its ``*.json``, ``*.jsonl``, ``*.ndjson`` and their ``.gz`` forms, in sorted
  name order, not descending into subfolders.

Bad records are passed on, not dropped. A JSONL line that is not valid JSON, or is
valid JSON but not an object, is yielded as the raw line ``bytes`` (without its line
ending); a ``.json`` file that does not parse is yielded whole as ``bytes``, and a
non-object element of a JSON array as its JSON encoding. The producer sends bytes to
Kafka unchanged, so the stream's dead-letter handling records them and a replay shows
the pipeline exactly what the file held.

Rate limiting belongs to the producer; this module reads as fast as it is asked.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["REPLAY_SUFFIXES", "replay_files", "replay_payloads"]

log = logging.getLogger(__name__)

REPLAY_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
_BOM = b"\xef\xbb\xbf"


def replay_payloads(path: str | Path, *, loop: bool = False) -> Iterator[dict[str, Any] | bytes]:
    """Yield the payloads stored at ``path`` (see the module docstring), forever if ``loop``.

    A missing ``path`` raises :class:`FileNotFoundError` here, at the call, not at the
    first ``next()``. With ``loop``, a folder is listed again on every pass, so files
    added meanwhile join in; a source that yields nothing in a whole pass ends the
    iteration instead of spinning.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(
            f"replay source {root} does not exist (expected a JSONL file, a .jsonl.gz file "
            f"or a folder of .json/.jsonl files)"
        )
    return _replay(root, loop)


def replay_files(path: str | Path) -> list[Path]:
    """The files a replay of ``path`` reads, in order."""
    root = Path(path)
    if root.is_dir():
        return sorted(
            (child for child in root.iterdir() if child.is_file() and child.name.endswith(REPLAY_SUFFIXES)),
            key=lambda child: child.name,
        )
    if not root.exists():
        raise FileNotFoundError(f"replay source {root} does not exist")
    return [root]


def _replay(root: Path, loop: bool) -> Iterator[dict[str, Any] | bytes]:
    while True:
        yielded = False
        for file in replay_files(root):
            for payload in _read_file(file):
                yielded = True
                yield payload
        if not loop:
            return
        if not yielded:
            log.warning("replay source %s holds no records; stopping instead of looping", root)
            return


def _open(file: Path) -> IO[bytes]:
    return gzip.open(file, "rb") if file.name.endswith(".gz") else file.open("rb")


def _read_file(file: Path) -> Iterator[dict[str, Any] | bytes]:
    name = file.name.removesuffix(".gz")
    with _open(file) as handle:
        if name.endswith(".json"):
            yield from _whole_json(handle.read())
        else:
            yield from _json_lines(handle)


def _whole_json(raw: bytes) -> Iterator[dict[str, Any] | bytes]:
    raw = raw.removeprefix(_BOM)
    if not raw.strip():
        return
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield raw
        return
    items = document if isinstance(document, list) else [document]
    for item in items:
        yield item if isinstance(item, dict) else orjson.dumps(item)


def _json_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any] | bytes]:
    first = True
    for line in lines:
        if first:
            line = line.removeprefix(_BOM)
            first = False
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield line
            continue
        yield record if isinstance(record, dict) else line
