"""``ssp dataset prepare``: deduplicate one version's raw tweets and split them into datasets."""

from __future__ import annotations

import click

from ssp.config import DatasetConfig, InfraConfig, overridden
from ssp.errors import reported


@click.group("dataset")
def dataset() -> None:
    """Datasets built from the ingested tweets: deduplicated, then split into test, dev, snorkel_train and train."""


@dataset.command("prepare", short_help="Deduplicate the raw tweets of a version and split them.")
@click.option("--version", "version", type=click.IntRange(min=0), default=None,
              help="Dataset version (default: DatasetConfig.version); reads raw_tweet_dataset_<version>.")
@click.option("--overwrite", is_flag=True,
              help="Rebuild the version's tables if they exist (their weak and gold labels are lost).")
def prepare(version: int | None, overwrite: bool) -> None:
    """Deduplicate raw_tweet_dataset_<v> into deduplicated_raw_tweet_dataset_<v> and split it, seeded, into
    test_dataset_<v>, dev_dataset_<v>, snorkel_train_dataset_<v> and train_dataset_<v>.

    Duplicates are tweets with the same text up to case, whitespace, links and a leading 'RT @user:';
    the earliest of each group is kept. Split sizes come from DatasetConfig and shrink in proportion
    (with a warning) when there are fewer tweets. An existing version is left alone unless --overwrite;
    the tables are replaced in one transaction, so a failure leaves the previous ones as they were.
    """
    from ssp.dataset.prepare import prepare_dataset
    from ssp.progress import summary

    config = overridden(DatasetConfig(), version=version)
    with reported(f"preparing dataset version {config.version}", ValueError):
        result = prepare_dataset(InfraConfig().database_url, config, overwrite=overwrite)
    summary(result.line())
