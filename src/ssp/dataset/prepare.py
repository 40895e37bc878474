"""Turn one version's raw tweets into a deduplicated table and four disjoint, seeded splits.

``raw_tweet_dataset_<v>`` becomes ``deduplicated_raw_tweet_dataset_<v>`` (one row per group of
duplicates) and ``test_dataset_<v>``, ``dev_dataset_<v>``, ``snorkel_train_dataset_<v>`` and
``train_dataset_<v>``.

Duplicates are tweets whose :func:`normalize_text` is equal: the same text, or the same text up to
case, whitespace, links and a leading ``RT @user:``. Each group keeps its earliest tweet
(``created_at``, then ``id``) with ``dup_count`` = the group's size, so a tweet never has a twin in
another split and a model is not scored on what it trained on.

The split depends only on the seed and the tweet ids: tweets are ranked by
``sha256(f"{seed}:{id}")`` (:func:`split_rank`) and cut into consecutive runs of the sizes
:func:`plan_split_sizes` gives, so the same raw table and seed give the same splits whatever order
the rows were ingested in, and every tweet lands in exactly one split.

Everything happens in one transaction: the new tables are built under temporary names while the old
ones stay readable, then the old ones are dropped and the new ones renamed into place just before
the commit. A crash or an error anywhere rolls all of it back and leaves the previous version as it
was. A transaction-level advisory lock on the version keeps two prepares of it from interleaving.

>>> plan_split_sizes(20_000, DatasetConfig())
({'test': 1000, 'dev': 500, 'snorkel_train': 10000, 'train': 8500}, False)
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from dataclasses import dataclass, field

from ssp.config import ConfigError, DatasetConfig
from ssp.errors import SspError
from ssp.progress import progress_bar
from ssp.storage.postgres import advisory_lock_key, make_engine, rows_to_csv
from ssp.storage.tables import (
    DATASET_COLUMNS,
    DATASET_SPLITS,
    DEDUP_KEY,
    dataset_table,
    dataset_tables,
    validate_identifier,
    validate_version,
    versioned_table_name,
)
from ssp.text import normalize_text

__all__ = [
    "DEDUP",
    "DatasetError",
    "PrepareSummary",
    "normalize_text",
    "output_tables",
    "plan_split_sizes",
    "prepare_dataset",
    "split_rank",
]

log = logging.getLogger(__name__)

# Rows fetched from the server-side cursor and COPYed back per round trip: large enough that round
# trips do not dominate, small enough that one chunk's Python objects stay a few MB.
CHUNK_ROWS = 20_000
DEDUP = DEDUP_KEY  # the deduplicated table's key in output_tables(), beside the split names
_SIZE_FIELDS = {"test": "test_size", "dev": "dev_size", "snorkel_train": "snorkel_train_size"}
# What a raw row carries into the dataset tables; the label columns start empty.
_TWEET_COLUMNS = ("id", "created_at", "text", "lang", "user_screen_name", "urls", "hashtags", "is_retweet")
# Sorting millions of normalised texts spills to disk with the default 4 MB; this applies to the
# prepare transaction only.
_WORK_MEM = "64MB"



class DatasetError(SspError, RuntimeError):
    """The dataset cannot be prepared from what is in the database; the message says why."""


def split_rank(seed: int, tweet_id: int) -> bytes:
    """A tweet's place in the seeded shuffle; the SQL ranking computes exactly this.

    >>> split_rank(42, 7).hex()[:16]
    '755dac3729029e2e'
    """
    return hashlib.sha256(f"{seed}:{tweet_id}".encode()).digest()


def _check_config(config: DatasetConfig) -> None:
    for name in (*_SIZE_FIELDS.values(), "min_train_size", "seed"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"DatasetConfig.{name} must be an integer, got {value!r}")
        if name != "seed" and value < 0:
            raise ConfigError(f"DatasetConfig.{name} must be 0 or more, got {value}")
    fraction = config.min_train_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
        raise ConfigError(f"DatasetConfig.min_train_fraction must be a number in [0, 1), got {fraction!r}")


def plan_split_sizes(rows: int, config: DatasetConfig) -> tuple[dict[str, int], bool]:
    """How many of ``rows`` deduplicated tweets go to each split, and whether the sizes were scaled.

    The configured test, dev and snorkel_train sizes are used as they are when at least
    ``min_train_size`` tweets remain for train. With fewer rows they shrink in proportion (rounded
    down) so that train keeps ``min_train_size`` and at least ``min_train_fraction`` of the rows
    (a classifier needs something to learn from); everything not drawn goes to train.

    >>> plan_split_sizes(1150, DatasetConfig(min_train_size=100, min_train_fraction=0.0))
    ({'test': 91, 'dev': 45, 'snorkel_train': 913, 'train': 101}, True)
    >>> plan_split_sizes(2500, DatasetConfig())
    ({'test': 130, 'dev': 65, 'snorkel_train': 1304, 'train': 1001}, True)
    >>> plan_split_sizes(20000, DatasetConfig())
    ({'test': 1000, 'dev': 500, 'snorkel_train': 10000, 'train': 8500}, False)
    >>> plan_split_sizes(3, DatasetConfig(min_train_size=5))
    Traceback (most recent call last):
    ...
    ssp.dataset.prepare.DatasetError: only 3 deduplicated tweets, fewer than DatasetConfig.min_train_size = 5
    """
    _check_config(config)
    if rows < config.min_train_size:
        raise DatasetError(
            f"only {rows} deduplicated tweets, fewer than DatasetConfig.min_train_size = {config.min_train_size}"
        )
    wanted = {split: getattr(config, name) for split, name in _SIZE_FIELDS.items()}
    drawn = sum(wanted.values())
    available = rows - max(config.min_train_size, math.ceil(rows * config.min_train_fraction))
    scaled = drawn > available
    if scaled:
        # integer arithmetic: the floor of size * available / drawn, no float rounding surprises
        sizes = {split: size * available // drawn for split, size in wanted.items()}
    else:
        sizes = dict(wanted)
    sizes["train"] = rows - sum(sizes.values())
    return sizes, scaled


def output_tables(version: int | str) -> dict[str, str]:
    """The tables ``prepare`` writes for ``version``: the deduplicated table, then one per split.

    >>> output_tables(3)
    {'dedup': 'deduplicated_raw_tweet_dataset_3', 'test': 'test_dataset_3', 'dev': 'dev_dataset_3', \
'snorkel_train': 'snorkel_train_dataset_3', 'train': 'train_dataset_3'}
    """
    return dataset_tables(version)


@dataclass
class PrepareSummary:
    """What one ``prepare`` did; ``skipped`` means the version existed and was left alone."""

    version: int
    raw_table: str
    raw_rows: int
    non_english_rows: int
    dedup_rows: int
    exact_dups: int
    near_dups: int
    sizes: dict[str, int]
    scaled: bool
    skipped: bool
    seconds: float
    tables: dict[str, str] = field(default_factory=dict)
    gold_labels_discarded: int = 0
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        splits = ", ".join(f"{self.tables.get(split, split)} {self.sizes[split]}" for split in self.sizes)
        if self.skipped:
            return (
                f"dataset version {self.version} already exists ({splits}); left alone, "
                "pass --overwrite to rebuild it"
            )
        language = f", {self.non_english_rows} non-English left out" if self.non_english_rows else ""
        scaled = " (split sizes scaled down: too few tweets)" if self.scaled else ""
        return (
            f"prepared dataset version {self.version}: {self.raw_rows} tweets in {self.raw_table}{language} -> "
            f"{self.dedup_rows} in {self.tables[DEDUP]} ({self.exact_dups} exact and {self.near_dups} near "
            f"duplicates removed); {splits}{scaled} in {self.seconds:.1f} s"
        )


def _lock_key(version: int) -> int:
    """The advisory-lock key of this version's prepare."""
    return advisory_lock_key("ssp.dataset.prepare", version)


def _existing(cur, names) -> list[str]:
    found = []
    for name in names:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
        if cur.fetchone()[0]:
            found.append(name)
    return found


def _count(cur, table: str) -> int:
    cur.execute(f"SELECT count(*) FROM {validate_identifier(table, 'table name')}")
    return cur.fetchone()[0]


def _gold_labels(cur, tables: list[str]) -> int:
    """Distinct tweets with a gold label in ``tables``, which an overwrite is about to drop."""
    labelled = []
    for table in tables:
        cur.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s AND column_name = 'label'",
            (table,),
        )
        if cur.fetchone():
            labelled.append(f"SELECT id FROM {validate_identifier(table, 'table name')} WHERE label IS NOT NULL")
    if not labelled:
        return 0
    cur.execute(f"SELECT count(DISTINCT id) FROM ({' UNION ALL '.join(labelled)}) AS gold")
    return cur.fetchone()[0]


def _primary_key_name(cur, table: str) -> str:
    cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'", (table,))
    return validate_identifier(cur.fetchone()[0], "primary key name")


def _swap_into_place(cur, build: dict[str, str], targets: dict[str, str], existing: list[str]) -> None:
    """Drop the version's old tables and give the new ones, and their primary keys, the final names.

    Runs inside the prepare transaction, so readers see the old tables or the new ones, never a mix.
    """
    for name in existing:
        cur.execute(f"DROP TABLE {validate_identifier(name, 'table name')}")
    for key, target in targets.items():
        temporary_key = _primary_key_name(cur, build[key])
        cur.execute(f"ALTER TABLE {build[key]} RENAME TO {target}")
        # PostgreSQL names a primary key <table>_pkey, truncating the table part to fit 63 characters
        final_key = validate_identifier(f"{target[:58]}_pkey", "primary key name")
        cur.execute(f"ALTER TABLE {target} RENAME CONSTRAINT {temporary_key} TO {final_key}")


def _normalise_into(cur, raw_table: str, where: str, params: tuple, stage: str, total: int,
                    show_progress: bool) -> None:
    """Stream ``(id, text)`` from the raw table and COPY ``(id, norm_text)`` into ``stage``."""
    with cur.connection.cursor(name=f"{stage}_reader") as reader, progress_bar(
        f"normalising {raw_table}", total, enabled=show_progress
    ) as advance:
        reader.itersize = CHUNK_ROWS
        reader.execute(f"SELECT id, text FROM {raw_table}{where}", params)
        while rows := reader.fetchmany(CHUNK_ROWS):
            csv_file, count = rows_to_csv((tweet_id, normalize_text(text)) for tweet_id, text in rows)
            cur.copy_expert(f"COPY {stage} (id, norm_text) FROM STDIN WITH (FORMAT csv)", csv_file)
            advance(count)


def _deduplicate(cur, raw_table: str, stage: str, dedup_table: str) -> tuple[int, int]:
    """Keep each norm_text group's earliest tweet; return (rows kept, distinct exact texts)."""
    columns = ", ".join(_TWEET_COLUMNS)
    # Both windows partition by norm_text, so one sort on (norm_text, created_at, id) serves them.
    cur.execute(
        f"INSERT INTO {dedup_table} ({columns}, norm_text, dup_count) "
        f"SELECT {', '.join('r.' + c for c in _TWEET_COLUMNS)}, kept.norm_text, kept.dup_count "
        "FROM ("
        "  SELECT s.id, s.norm_text, count(*) OVER (PARTITION BY s.norm_text) AS dup_count,"
        "         row_number() OVER (PARTITION BY s.norm_text ORDER BY r.created_at, r.id) AS place"
        f"  FROM {stage} s JOIN {raw_table} r ON r.id = s.id"
        f") kept JOIN {raw_table} r ON r.id = kept.id "
        "WHERE kept.place = 1"
    )
    kept = cur.rowcount
    cur.execute(f"SELECT count(DISTINCT r.text) FROM {stage} s JOIN {raw_table} r ON r.id = s.id")
    return kept, cur.fetchone()[0]


def _split(cur, dedup_table: str, build: dict[str, str], ranks: str, seed: int, sizes: dict[str, int]) -> None:
    """Rank the deduplicated tweets by :func:`split_rank` and cut the ranking into the splits."""
    cur.execute(
        f"CREATE TEMP TABLE {ranks} ON COMMIT DROP AS SELECT id, row_number() OVER ("
        "  ORDER BY sha256(convert_to(%s || id::text, 'UTF8')), id) AS position "
        f"FROM {dedup_table}",
        (f"{seed}:",),
    )
    columns = ", ".join(DATASET_COLUMNS)
    first = 0
    for split in DATASET_SPLITS:
        cur.execute(
            f"INSERT INTO {build[split]} ({columns}) SELECT {', '.join('d.' + c for c in DATASET_COLUMNS)} "
            f"FROM {dedup_table} d JOIN {ranks} k ON k.id = d.id WHERE k.position > %s AND k.position <= %s",
            (first, first + sizes[split]),
        )
        first += sizes[split]


def _lock_version(cur, version: int) -> None:
    """Hold this version's advisory lock until the transaction ends; wait for a prepare holding it."""
    cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_lock_key(version),))
    if not cur.fetchone()[0]:
        log.info("waiting for another prepare of dataset version %s to finish", version)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(version),))


def _skipped(cur, version: int, raw_table: str, targets: dict[str, str], existing: list[str],
             start: float) -> PrepareSummary:
    names = {key: name for key, name in targets.items() if name in existing}
    log.info("dataset version %s exists (%s); left alone", version, ", ".join(existing))
    return PrepareSummary(
        version=version, raw_table=raw_table, raw_rows=0, non_english_rows=0,
        dedup_rows=_count(cur, names[DEDUP]) if DEDUP in names else 0, exact_dups=0, near_dups=0,
        sizes={key: _count(cur, name) for key, name in names.items() if key != DEDUP}, scaled=False,
        skipped=True, seconds=time.monotonic() - start, tables=names,
    )


def _count_raw(cur, raw_table: str, version: int, english_only: bool) -> tuple[int, int]:
    """(all rows, rows prepare takes) of the raw table, or a DatasetError saying why there are none."""
    if not _existing(cur, [raw_table]):
        raise DatasetError(
            f"raw table {raw_table} does not exist: ingest dataset version {version} first "
            f"(ssp ingest --version {version})"
        )
    cur.execute(f"SELECT count(*), count(*) FILTER (WHERE lang = %s) FROM {raw_table}", ("en",))
    raw_rows, english_rows = cur.fetchone()
    if raw_rows == 0:
        raise DatasetError(f"raw table {raw_table} is empty: there is nothing to prepare")
    if not english_only:
        return raw_rows, raw_rows
    if english_rows == 0:
        raise DatasetError(
            f"raw table {raw_table} holds no English tweets (lang = 'en') and DatasetConfig.english_only is set: "
            "there is nothing to prepare"
        )
    return raw_rows, english_rows


def prepare_dataset(
    database_url: str,
    config: DatasetConfig,
    overwrite: bool = False,
    show_progress: bool = True,
) -> PrepareSummary:
    """Deduplicate ``<raw_table_prefix>_<version>`` and split it into the version's dataset tables.

    When any of the version's tables exists it is left alone unless ``overwrite``; the summary then
    has ``skipped`` set and the sizes of the tables found. With ``english_only`` only tweets whose
    ``lang`` is ``en`` are taken.
    """
    start = time.monotonic()
    _check_config(config)
    version = validate_version(config.version)
    raw_table = versioned_table_name(config.raw_table_prefix, version)
    targets = output_tables(version)
    if raw_table in targets.values():
        raise ConfigError(
            f"DatasetConfig.raw_table_prefix {config.raw_table_prefix!r} names one of the tables prepare "
            f"writes ({raw_table}); prepare would replace its own input"
        )
    token = uuid.uuid4().hex[:10]
    build = {key: validate_identifier(f"ssp_build_{token}_{key}", "table name") for key in targets}
    stage = validate_identifier(f"ssp_norm_{token}", "table name")
    ranks = validate_identifier(f"ssp_rank_{token}", "table name")

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn, conn.connection.dbapi_connection.cursor() as cur:
            _lock_version(cur, version)
            existing = _existing(cur, targets.values())
            if existing and not overwrite:
                return _skipped(cur, version, raw_table, targets, existing, start)
            raw_rows, considered = _count_raw(cur, raw_table, version, config.english_only)

            cur.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
            for key in targets:
                dataset_table(build[key]).create(conn)
            cur.execute(f"CREATE TEMP TABLE {stage} (id bigint NOT NULL, norm_text text NOT NULL) ON COMMIT DROP")
            _normalise_into(cur, raw_table, " WHERE lang = %s" if config.english_only else "",
                            ("en",) if config.english_only else (), stage, considered, show_progress)
            # temporary tables are never analysed automatically, and the join plans need their size
            cur.execute(f"ANALYZE {stage}")

            log.info("deduplicating %s tweets of %s", considered, raw_table)
            dedup_rows, distinct_texts = _deduplicate(cur, raw_table, stage, build[DEDUP])
            sizes, scaled = plan_split_sizes(dedup_rows, config)
            log.info("splitting %s tweets with seed %s: %s", dedup_rows, config.seed, sizes)
            _split(cur, build[DEDUP], build, ranks, config.seed, sizes)

            gold = _gold_labels(cur, existing)
            _swap_into_place(cur, build, targets, existing)
    finally:
        engine.dispose()

    warnings = []
    if scaled:
        warnings.append(
            f"only {dedup_rows} deduplicated tweets in {raw_table}, fewer than the configured test "
            f"{config.test_size} + dev {config.dev_size} + snorkel_train {config.snorkel_train_size} + "
            f"min_train {config.min_train_size}; split sizes scaled down to "
            + ", ".join(f"{split} {size}" for split, size in sizes.items())
        )
    if gold:
        warnings.append(f"--overwrite discarded the gold labels of {gold} tweets in the old tables of version {version}")
    for warning in warnings:
        log.warning(warning)
    return PrepareSummary(
        version=version, raw_table=raw_table, raw_rows=raw_rows, non_english_rows=raw_rows - considered,
        dedup_rows=dedup_rows, exact_dups=considered - distinct_texts, near_dups=distinct_texts - dedup_rows,
        sizes=sizes, scaled=scaled, skipped=False, seconds=time.monotonic() - start, tables=targets,
        gold_labels_discarded=gold, warnings=warnings,
    )
