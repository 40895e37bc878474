"""The gold labels as files: CSV (safe to open in a spreadsheet), JSON lines and parquet, streamed."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime

from ssp.web.tagger.store import EXPORT_COLUMNS, iso

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson",
                  "parquet": "application/vnd.apache.parquet"}
# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell a spreadsheet will not run as a formula: one starting with = + - @, a tab or a carriage
    return gets a leading single quote (OWASP's advice); numbers and other cells stay as they are.

    >>> spreadsheet_safe("=1+2"), spreadsheet_safe("@SUM(A1)"), spreadsheet_safe("-1"), spreadsheet_safe(-1)
    ("'=1+2", "'@SUM(A1)", "'-1", -1)
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _export_value(value):
    if isinstance(value, datetime):
        return iso(value)
    return value


def export_csv(rows: Iterator[dict]) -> Iterator[str]:
    """The rows as CSV with a header, in chunks of 500 rows; text cells are made :func:`spreadsheet_safe`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(["" if (v := _export_value(row[c])) is None else spreadsheet_safe(v)
                         for c in EXPORT_COLUMNS])
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_jsonl(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps({c: _export_value(row[c]) for c in EXPORT_COLUMNS}, ensure_ascii=False) + "\n"


def export_parquet(rows: Iterator[dict], row_group: int = 10_000) -> Iterator[bytes]:
    """Parquet needs its footer last: row groups go to a spooled temporary file, then out in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")),
                        ("user_screen_name", pa.string()), ("text", pa.string()), ("label", pa.int8()),
                        ("labelled_by", pa.string()), ("labelled_at", pa.timestamp("us", tz="UTC")),
                        ("slabel", pa.int8()), ("slabel_prob", pa.float32())])
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        with pq.ParquetWriter(spool, schema) as writer:
            batch: list[dict] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= row_group:
                    writer.write_table(pa.Table.from_pylist(batch, schema))
                    batch = []
            writer.write_table(pa.Table.from_pylist(batch, schema))
        spool.seek(0)
        while chunk := spool.read(256 * 1024):
            yield chunk

