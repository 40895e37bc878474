"""``ssp dataset prepare``: normalisation, split sizes, and dedup + split on a real PostgreSQL."""

from __future__ import annotations

import math
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from click.testing import CliRunner
from psycopg2.extras import Json, execute_values

import ssp.dataset.prepare as prepare_module
from ssp.config import ConfigError, DatasetConfig
from ssp.dataset.cli import dataset
from ssp.dataset.prepare import (
    DEDUP,
    DatasetError,
    normalize_text,
    output_tables,
    plan_split_sizes,
    prepare_dataset,
    split_rank,
)
from ssp.sources.synthetic import SyntheticTweets
from ssp.storage.postgres import ensure_tables, make_engine
from ssp.storage.tables import DATASET_SPLITS, RAW_TWEET_COLUMNS, raw_tweets_table, versioned_table_name
from ssp.tweets import parse_tweet

START = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------- pure functions
@pytest.mark.parametrize("a, b", [
    ("Deep learning is fun", "deep LEARNING is FUN"),
    ("Deep learning is fun", "  Deep\tlearning   is fun \n"),
    ("Deep learning is fun https://t.co/abc", "Deep learning is fun https://t.co/xyz?utm_source=twitter"),
    ("Deep learning is fun", "Deep learning is fun www.example.com/page"),
    ("Deep learning is fun", "RT @alice_1: Deep learning is fun"),
    ("Deep learning is fun", "RT @alice: RT @bob: Deep learning is fun"),
    ("Straße", "STRASSE"),
])
def test_near_duplicates_share_a_normal_form(a, b):
    assert normalize_text(a) == normalize_text(b)


@pytest.mark.parametrize("a, b", [
    ("Deep learning is fun", "Deep learning is fun!"),
    ("Deep learning is fun", "Deep learning is fun #AI"),
    ("I said RT @alice: deep learning", "I said deep learning"),  # RT only counts at the start
    ("https://t.co/abc", "https://t.co/xyz"),  # link-only tweets keep their links
    ("Deep learning is fun", "@alice Deep learning is fun"),  # a reply is not a retweet
    ("awww.so cute", "a cute"),  # 'www.' inside a word is not a link
])
def test_different_tweets_keep_different_normal_forms(a, b):
    assert normalize_text(a) != normalize_text(b)


def test_configured_sizes_are_used_when_there_are_enough_rows():
    config = DatasetConfig(test_size=10, dev_size=5, snorkel_train_size=20, min_train_size=3, min_train_fraction=0.0)
    assert plan_split_sizes(38, config) == ({"test": 10, "dev": 5, "snorkel_train": 20, "train": 3}, False)
    assert plan_split_sizes(1000, config) == ({"test": 10, "dev": 5, "snorkel_train": 20, "train": 965}, False)


@pytest.mark.parametrize("rows", [2467, 11_000, 19_166])
def test_small_tables_keep_a_share_for_train(rows):
    sizes, scaled = plan_split_sizes(rows, DatasetConfig())  # 1000 / 500 / 10,000, train >= 40%
    assert scaled
    assert sum(sizes.values()) == rows
    assert sizes["train"] >= 0.4 * rows
    assert sizes["train"] - 0.4 * rows < 4  # what rounding down leaves over, no more
    available = rows - math.ceil(0.4 * rows)
    for split, configured in (("test", 1000), ("dev", 500), ("snorkel_train", 10_000)):
        share = configured * available / 11_500
        assert share - 1 < sizes[split] <= share  # the configured proportions, rounded down


@pytest.mark.parametrize("fraction", [-0.1, 1.0, "half"])
def test_min_train_fraction_is_checked(fraction):
    with pytest.raises(ConfigError, match="min_train_fraction"):
        plan_split_sizes(100, DatasetConfig(min_train_fraction=fraction))


@pytest.mark.parametrize("rows", [37, 20, 7, 3])
def test_scaled_sizes_keep_proportions_and_min_train(rows):
    config = DatasetConfig(test_size=1000, dev_size=500, snorkel_train_size=10_000, min_train_size=3,
                           min_train_fraction=0.0)
    sizes, scaled = plan_split_sizes(rows, config)
    assert scaled
    assert sum(sizes.values()) == rows and sizes["train"] >= 3
    drawn = rows - sizes["train"]
    # each split keeps its configured share of what is drawn, up to rounding down
    for split, configured in (("test", 1000), ("dev", 500), ("snorkel_train", 10_000)):
        share = configured * (rows - 3) / 11_500
        assert share - 1 < sizes[split] <= share
    assert drawn <= rows - 3 and sizes["test"] >= sizes["dev"]


def test_too_few_rows_and_bad_sizes_are_named():
    with pytest.raises(DatasetError, match="min_train_size = 10"):
        plan_split_sizes(9, DatasetConfig(min_train_size=10))
    with pytest.raises(ConfigError, match="DatasetConfig.dev_size"):
        plan_split_sizes(100, DatasetConfig(dev_size=-1))
    with pytest.raises(ConfigError, match="DatasetConfig.test_size"):
        plan_split_sizes(100, DatasetConfig(test_size="many"))


def test_output_table_names():
    assert output_tables(7) == {
        "dedup": "deduplicated_raw_tweet_dataset_7", "test": "test_dataset_7", "dev": "dev_dataset_7",
        "snorkel_train": "snorkel_train_dataset_7", "train": "train_dataset_7",
    }


def test_raw_prefix_that_names_an_output_is_refused():
    config = DatasetConfig(version=1, raw_table_prefix="train_dataset")
    with pytest.raises(ConfigError, match="train_dataset_1"):
        prepare_dataset("postgresql://nobody@127.0.0.1:1/none", config)


# ---------------------------------------------------------------- helpers for the database tests
def _synthetic_rows(n: int, seed: int = 5) -> tuple[list[tuple], dict[int, frozenset[str]]]:
    rows, traits = [], {}
    for offset, synthetic in enumerate(SyntheticTweets(seed).generate(n)):
        tweet = parse_tweet(synthetic.payload)
        traits[tweet.id] = synthetic.traits
        rows.append((tweet.id, tweet.created_at, tweet.text, tweet.lang, tweet.user_screen_name, list(tweet.urls),
                     list(tweet.hashtags), tweet.is_retweet, Json(synthetic.payload), "t", 0, offset))
    return rows, traits


def _row(tweet_id: int, text: str, minute: float = 0, lang: str = "en") -> tuple:
    return (tweet_id, START + timedelta(minutes=minute), text, lang, "someone", [], [], False,
            Json({"id": tweet_id}), "t", 0, tweet_id)


def _insert_raw(db, database_url: str, version: int, rows: list[tuple]) -> None:
    table = versioned_table_name("raw_tweet_dataset", version)
    engine = make_engine(database_url)
    ensure_tables(engine, raw_tweets_table(table))
    engine.dispose()
    with db.cursor() as cur:
        execute_values(cur, f"INSERT INTO {table} ({', '.join(RAW_TWEET_COLUMNS)}) VALUES %s", rows)


def _split_ids(db, version: int) -> dict[str, list[int]]:
    ids = {}
    with db.cursor() as cur:
        for key, table in output_tables(version).items():
            cur.execute(f"SELECT id FROM {table} ORDER BY id")
            ids[key] = [row[0] for row in cur.fetchall()]
    return ids


def _config(version: int, **sizes) -> DatasetConfig:
    return DatasetConfig(version=version, **{"test_size": 30, "dev_size": 20, "snorkel_train_size": 60, **sizes})


@pytest.fixture
def version(stack, db):
    """A dataset version no other test uses; its tables are dropped afterwards."""
    number = int(uuid.uuid4().hex[:7], 16) + 1000
    yield number
    with db.cursor() as cur:
        for table in (versioned_table_name("raw_tweet_dataset", number), *output_tables(number).values()):
            cur.execute(f"DROP TABLE IF EXISTS {table}")


# ---------------------------------------------------------------- the database tests
@pytest.mark.integration
def test_splits_have_the_configured_sizes_are_disjoint_and_cover_the_dedup_table(stack, db, version):
    rows, traits = _synthetic_rows(400)
    _insert_raw(db, stack.database_url, version, rows)
    config = _config(version)
    result = prepare_dataset(stack.database_url, config, show_progress=False)

    # the kept tweets are, per normal form, the earliest (created_at, id): computed here independently
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        groups.setdefault(normalize_text(row[2]), []).append(row)
    expected_kept = {min(group, key=lambda r: (r[1], r[0]))[0] for group in groups.values()}
    ids = _split_ids(db, version)
    assert set(ids[DEDUP]) == expected_kept
    assert result.dedup_rows == len(expected_kept) < 400
    assert result.raw_rows == 400 and result.exact_dups + result.near_dups == 400 - len(expected_kept)
    assert result.near_dups > 0 and result.exact_dups > 0

    # each of the synthetic stream's duplicates and near duplicates was merged with its original (which one
    # of a pair is kept can go either way: v1 timestamps have whole seconds, v2 ones milliseconds)
    copies = [row for row in rows if traits[row[0]] & {"duplicate", "near_duplicate"}]
    assert copies and result.dedup_rows <= 400 - len(copies)
    with db.cursor() as cur:
        cur.execute(f"SELECT norm_text, dup_count FROM {output_tables(version)[DEDUP]}")
        dup_counts = dict(cur.fetchall())
    assert all(dup_counts[normalize_text(row[2])] >= 2 for row in copies)

    expected_sizes = {"test": 30, "dev": 20, "snorkel_train": 60, "train": len(expected_kept) - 110}
    assert result.sizes == expected_sizes and not result.scaled
    assert {split: len(ids[split]) for split in DATASET_SPLITS} == expected_sizes
    all_split_ids = [i for split in DATASET_SPLITS for i in ids[split]]
    assert len(all_split_ids) == len(set(all_split_ids)) and set(all_split_ids) == set(ids[DEDUP])

    # the order is sha256(f"{seed}:{id}"): test takes the first 30, dev the next 20
    ranked = sorted(ids[DEDUP], key=lambda i: split_rank(config.seed, i))
    assert sorted(ranked[:30]) == ids["test"] and sorted(ranked[30:50]) == ids["dev"]

    with db.cursor() as cur:
        cur.execute(f"SELECT sum(dup_count), count(*) FILTER (WHERE norm_text = '') FROM {output_tables(version)[DEDUP]}")
        assert cur.fetchone() == (400, 0)
        cur.execute(f"SELECT text, norm_text, dup_count, slabel, label FROM test_dataset_{version}")
        for text, norm_text, dup_count, slabel, label in cur.fetchall():
            assert norm_text == normalize_text(text)
            assert dup_count == len(groups[norm_text]) and slabel is None and label is None
    assert f"test_dataset_{version} 30" in result.line() and "near duplicates removed" in result.line()


@pytest.mark.integration
def test_splits_depend_on_seed_and_ids_only(stack, db, version):
    rows, _ = _synthetic_rows(300, seed=9)
    _insert_raw(db, stack.database_url, version, rows)
    prepare_dataset(stack.database_url, _config(version), show_progress=False)
    first = _split_ids(db, version)

    again = prepare_dataset(stack.database_url, _config(version), overwrite=True, show_progress=False)
    assert not again.skipped and _split_ids(db, version) == first

    shuffled_version = version + 1
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    try:
        _insert_raw(db, stack.database_url, shuffled_version, shuffled)
        prepare_dataset(stack.database_url, _config(shuffled_version), show_progress=False)
        assert _split_ids(db, shuffled_version) == first

        prepare_dataset(stack.database_url, _config(shuffled_version, seed=43), overwrite=True, show_progress=False)
        other_seed = _split_ids(db, shuffled_version)
        assert other_seed[DEDUP] == first[DEDUP] and other_seed["test"] != first["test"]
    finally:
        with db.cursor() as cur:
            for table in (f"raw_tweet_dataset_{shuffled_version}", *output_tables(shuffled_version).values()):
                cur.execute(f"DROP TABLE IF EXISTS {table}")


@pytest.mark.integration
def test_exact_and_near_duplicates_keep_the_earliest_tweet(stack, db, version):
    rows = [
        _row(101, "Deep learning is fun https://t.co/aaa", minute=0),
        _row(102, "Deep learning is fun https://t.co/aaa", minute=1),  # exact
        _row(103, "deep   LEARNING is fun https://t.co/bbb", minute=2),  # case, whitespace, link
        _row(104, "RT @alice: Deep learning is fun https://t.co/aaa", minute=3),  # retweet
        _row(150, "  Deep learning is fun\n", minute=-5),  # the earliest, though not the lowest id
        _row(201, "Cooking pasta tonight", minute=0),
        _row(202, "Cooking pasta tonight!", minute=0),  # punctuation: a different tweet
        _row(301, "https://t.co/xxx", minute=0),
        _row(302, "https://t.co/yyy", minute=0),  # link-only tweets are not merged
        _row(402, "Hello World", minute=7),
        _row(401, "hello world", minute=7),  # same time: the lower id is kept
    ]
    _insert_raw(db, stack.database_url, version, rows)
    result = prepare_dataset(stack.database_url, _config(version, test_size=1, dev_size=1, snorkel_train_size=1),
                             show_progress=False)
    with db.cursor() as cur:
        cur.execute(f"SELECT id, norm_text, dup_count FROM {output_tables(version)[DEDUP]} ORDER BY id")
        kept = cur.fetchall()
    assert kept == [
        (150, "deep learning is fun", 5), (201, "cooking pasta tonight", 1), (202, "cooking pasta tonight!", 1),
        (301, "https://t.co/xxx", 1), (302, "https://t.co/yyy", 1), (401, "hello world", 2),
    ]
    # exact: 102 repeats 101; near: 103, 104 and 150 in the first group, one of 401/402 in the last
    assert (result.dedup_rows, result.exact_dups, result.near_dups) == (6, 1, 4)
    assert result.sizes == {"test": 1, "dev": 1, "snorkel_train": 1, "train": 3}


@pytest.mark.integration
def test_english_only_leaves_other_languages_out(stack, db, version):
    rows = [_row(i, f"tweet number {i}", lang="en") for i in range(1, 9)]
    rows += [_row(100 + i, f"tuit número {i}", lang="es") for i in range(3)] + [_row(200, "???", lang=None)]
    _insert_raw(db, stack.database_url, version, rows)
    result = prepare_dataset(stack.database_url, _config(version, english_only=True, test_size=2, dev_size=2,
                                                         snorkel_train_size=2), show_progress=False)
    assert (result.raw_rows, result.non_english_rows, result.dedup_rows) == (12, 4, 8)
    assert set(_split_ids(db, version)[DEDUP]) == set(range(1, 9))


@pytest.mark.integration
def test_sizes_are_scaled_down_with_a_warning(stack, db, version, caplog):
    rows, _ = _synthetic_rows(60, seed=11)
    _insert_raw(db, stack.database_url, version, rows)
    config = DatasetConfig(version=version, min_train_size=10)  # the defaults: 1000 / 500 / 10,000
    with caplog.at_level("WARNING", logger="ssp.dataset.prepare"):
        result = prepare_dataset(stack.database_url, config, show_progress=False)
    assert result.scaled and result.sizes == plan_split_sizes(result.dedup_rows, config)[0]
    assert result.sizes["train"] >= 10 and result.sizes["snorkel_train"] > result.sizes["test"] > 0
    counts = {split: len(ids) for split, ids in _split_ids(db, version).items() if split != DEDUP}
    assert counts == result.sizes
    sizes_text = ", ".join(f"{split} {size}" for split, size in result.sizes.items())
    assert any("scaled down" in r.getMessage() and sizes_text in r.getMessage() for r in caplog.records)
    assert result.warnings and "scaled down" in result.line()


@pytest.mark.integration
def test_existing_version_is_left_alone_without_overwrite(stack, db, version):
    rows = [_row(i, f"tweet number {i}") for i in range(1, 21)]
    _insert_raw(db, stack.database_url, version, rows)
    config = _config(version, test_size=3, dev_size=2, snorkel_train_size=5)
    prepare_dataset(stack.database_url, config, show_progress=False)
    before = _split_ids(db, version)
    _insert_raw(db, stack.database_url, version, [_row(i, f"tweet number {i}") for i in range(21, 31)])
    with db.cursor() as cur:
        cur.execute(f"UPDATE test_dataset_{version} SET label = 1, labelled_by = 'me'")

    skipped = prepare_dataset(stack.database_url, config, show_progress=False)
    assert skipped.skipped and _split_ids(db, version) == before
    assert skipped.sizes == {"test": 3, "dev": 2, "snorkel_train": 5, "train": 10} and skipped.dedup_rows == 20
    assert "already exists" in skipped.line() and "--overwrite" in skipped.line()

    rebuilt = prepare_dataset(stack.database_url, config, overwrite=True, show_progress=False)
    assert not rebuilt.skipped and rebuilt.dedup_rows == 30
    assert set(_split_ids(db, version)[DEDUP]) == set(range(1, 31))
    assert rebuilt.gold_labels_discarded == 3 and any("gold labels of 3 tweets" in w for w in rebuilt.warnings)
    with db.cursor() as cur:  # the primary keys carry the tables' own names, ready for the next rebuild
        cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(%s) AND contype = 'p'",
                    (f"train_dataset_{version}",))
        assert cur.fetchone() == (f"train_dataset_{version}_pkey",)


def _build_tables(db) -> set[str]:
    with db.cursor() as cur:
        cur.execute(r"SELECT relname FROM pg_class WHERE relname LIKE 'ssp\_build\_%'")
        return {row[0] for row in cur.fetchall()}


@pytest.mark.integration
def test_a_failure_half_way_leaves_the_previous_tables(stack, db, version, monkeypatch):
    _insert_raw(db, stack.database_url, version, [_row(i, f"tweet number {i}") for i in range(1, 21)])
    config = _config(version, test_size=3, dev_size=2, snorkel_train_size=5)
    prepare_dataset(stack.database_url, config, show_progress=False)
    before = _split_ids(db, version)
    _insert_raw(db, stack.database_url, version, [_row(i, f"tweet number {i}") for i in range(21, 41)])
    leftovers = _build_tables(db)

    real_swap = prepare_module._swap_into_place

    def swap_then_crash(cur, build, targets, existing):
        real_swap(cur, build, targets, existing)  # old tables dropped, new ones renamed: then the crash
        raise RuntimeError("injected failure after the swap")

    monkeypatch.setattr(prepare_module, "_swap_into_place", swap_then_crash)
    with pytest.raises(RuntimeError, match="injected"):
        prepare_dataset(stack.database_url, config, overwrite=True, show_progress=False)
    assert _split_ids(db, version) == before and len(before[DEDUP]) == 20
    assert _build_tables(db) == leftovers

    fresh = version + 1
    _insert_raw(db, stack.database_url, fresh, [_row(i, f"tweet number {i}") for i in range(1, 21)])
    try:
        with pytest.raises(RuntimeError, match="injected"):
            prepare_dataset(stack.database_url, _config(fresh, test_size=1, dev_size=1, snorkel_train_size=1),
                            show_progress=False)
        with db.cursor() as cur:
            for table in output_tables(fresh).values():
                cur.execute("SELECT to_regclass(%s)", (table,))
                assert cur.fetchone() == (None,), table
    finally:
        with db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS raw_tweet_dataset_{fresh}")


@pytest.mark.integration
def test_a_prepare_waits_for_one_already_running_on_the_version(stack, db, version):
    _insert_raw(db, stack.database_url, version, [_row(i, f"tweet number {i}") for i in range(1, 11)])
    config = _config(version, test_size=1, dev_size=1, snorkel_train_size=1)
    holder = psycopg2.connect(stack.database_url)  # stands in for a prepare in the middle of its transaction
    results, errors = [], []

    def run() -> None:
        try:
            results.append(prepare_dataset(stack.database_url, config, show_progress=False))
        except Exception as err:  # surfaced by the assertions below
            errors.append(err)

    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (prepare_module._lock_key(version),))
        worker = threading.Thread(target=run)
        worker.start()
        worker.join(timeout=2)
        assert worker.is_alive() and not results and not errors
        with db.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f"test_dataset_{version}",))
            assert cur.fetchone() == (None,)
        holder.commit()
        worker.join(timeout=60)
    finally:
        holder.close()
    assert not errors and len(results) == 1 and results[0].dedup_rows == 10


@pytest.mark.integration
def test_missing_or_empty_raw_table_is_named(stack, db, version):
    with pytest.raises(DatasetError, match=f"raw table raw_tweet_dataset_{version} does not exist"):
        prepare_dataset(stack.database_url, _config(version), show_progress=False)
    _insert_raw(db, stack.database_url, version, [])
    with pytest.raises(DatasetError, match=f"raw table raw_tweet_dataset_{version} is empty"):
        prepare_dataset(stack.database_url, _config(version), show_progress=False)
    _insert_raw(db, stack.database_url, version, [_row(1, "hola", lang="es")])
    with pytest.raises(DatasetError, match="no English tweets"):
        prepare_dataset(stack.database_url, _config(version, english_only=True), show_progress=False)


# ---------------------------------------------------------------- the command
@pytest.mark.parametrize("args", [[], ["prepare"]], ids=["dataset", "prepare"])
def test_dataset_commands_have_help(args):
    result = CliRunner().invoke(dataset, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.integration
def test_prepare_command_prints_a_summary_and_leaves_an_existing_version(stack, db, version):
    rows, _ = _synthetic_rows(80, seed=13)
    _insert_raw(db, stack.database_url, version, rows)
    runner = CliRunner()
    first = runner.invoke(dataset, ["prepare", "--version", str(version)])
    assert first.exit_code == 0, first.output
    lines = first.stdout.strip().splitlines()
    assert lines[-1].startswith(f"prepared dataset version {version}: 80 tweets in raw_tweet_dataset_{version}")
    assert f"train_dataset_{version}" in lines[-1]
    assert len(_split_ids(db, version)[DEDUP]) > 0

    second = runner.invoke(dataset, ["prepare", "--version", str(version)])
    assert second.exit_code == 0 and "already exists" in second.stdout

    missing = runner.invoke(dataset, ["prepare", "--version", str(version + 1)])
    assert missing.exit_code != 0 and f"raw_tweet_dataset_{version + 1} does not exist" in missing.output
