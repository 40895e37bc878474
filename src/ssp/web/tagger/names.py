"""What the tagger accepts as names: dataset tables, tweet ids, annotators; and its error types."""

from __future__ import annotations

import re

from ssp.errors import SspError
from ssp.storage.tables import (
    DATASET_SPLITS,
    DEDUP_TABLE_PREFIX,
    dataset_tables,
    validate_identifier,
)
from ssp.web.common import ParameterError, UnavailableError

_TABLE_PREFIXES = "|".join([DEDUP_TABLE_PREFIX, *(f"{s}_dataset" for s in DATASET_SPLITS)])
TABLE_NAME = re.compile(rf"^(?:{_TABLE_PREFIXES})_([0-9]{{1,9}})$")  # the same in Python's and PostgreSQL's regex
TWEET_ID = re.compile(r"^[0-9]{1,19}$")
ANNOTATOR_EXTRA = " ._-@"
MAX_ANNOTATOR = 64


class TaggerConfigError(SspError, RuntimeError):
    """The tagger cannot start as configured; the message says what to set."""


class TableMissingError(UnavailableError):
    """A dataset table that does not exist (yet)."""


class ConflictError(SspError):
    """A write that would overwrite someone else's newer decision, or has nothing to act on (HTTP 409)."""


class NotFoundError(SspError):
    """A tweet id that is not in the table (HTTP 404)."""


class ImportRejected(SspError, ValueError):
    """A label file with bad rows; nothing was written. ``errors`` lists (line, message)."""

    def __init__(self, message: str, errors: list[tuple[int, str]], total: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.total = total


def dataset_table_names(version: int) -> list[str]:
    """The tables ``ssp dataset prepare`` writes for ``version``: the deduplicated table and its splits."""
    return list(dataset_tables(version).values())


def parse_table_name(name: str | None) -> tuple[str, int]:
    """``name`` and its dataset version if it is one of the dataset tables; a ParameterError otherwise.

    >>> parse_table_name("train_dataset_3")
    ('train_dataset_3', 3)
    """
    if not name:
        raise ParameterError("table", "table is required: pick one of the dataset tables on the start page")
    match = TABLE_NAME.match(name)
    if match is None:
        raise ParameterError("table", f"table {name!r} is not a dataset table: expected {DEDUP_TABLE_PREFIX}_<v> or "
                                      f"<split>_dataset_<v> with split one of {', '.join(DATASET_SPLITS)}")
    version = int(match[1])
    if name not in dataset_table_names(version):  # leading zeros: train_dataset_03
        raise ParameterError("table", f"table {name!r} is not a dataset table name (no leading zeros in versions)")
    return validate_identifier(name, "table name"), version


def annotator_name(raw: str) -> str:
    """The annotator's name with runs of white space as one space; a ValueError saying what is wrong otherwise.

    >>> annotator_name("  Ada   L. ")
    'Ada L.'
    """
    name = " ".join(raw.split())
    if not name:
        raise ValueError("name is required")
    if len(name) > MAX_ANNOTATOR:
        raise ValueError(f"name must be at most {MAX_ANNOTATOR} characters, got {len(name)}")
    bad = sorted({c for c in name if not (c.isalnum() or c in ANNOTATOR_EXTRA)})
    if bad:
        raise ValueError(f"name holds {''.join(bad)!r}: use letters, digits, spaces and . _ - @")
    return name
