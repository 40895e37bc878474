"""``ssp ingest`` (Kafka -> PostgreSQL) and ``ssp classify`` (Kafka -> model server -> PostgreSQL): the
Spark Structured Streaming jobs.

``python -m ssp.streaming.cli`` runs the command alone, with the default gin file.
"""

from __future__ import annotations

from pathlib import Path

import click

from ssp.config import CLASSIFY_PARSERS, ClassifyConfig, InfraConfig, IngestConfig, ServeConfig, overridden
from ssp.errors import SspError, reported


@click.command("ingest")
@click.option("--topic", default=None, help="Kafka topic to read (default: TopicsConfig.mix_tweets_topic).")
@click.option("--table-prefix", default=None, help="Table prefix (default: raw_tweet_dataset).")
@click.option("--version", "version", type=int, default=None, help="Dataset version: the table is <prefix>_<version>.")
@click.option("--max-records", type=int, default=None, help="Stop after reading this many records.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Stop when no record arrived for this many seconds.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Spark checkpoint folder (default: under the state dir, per topic and table).")
def ingest(topic, table_prefix, version, max_records, until_idle, checkpoint_dir) -> None:
    """Stream tweets from Kafka into the PostgreSQL table <prefix>_<version> (Spark Structured Streaming)."""
    from ssp.infra.spark import spark_session
    from ssp.progress import progress_bar
    from ssp.storage.tables import versioned_table_name
    from ssp.streaming.ingest import run_ingest

    if max_records is not None and until_idle is not None:
        raise SspError("give --max-records or --until-idle, not both")
    infra_config, config = InfraConfig(), IngestConfig()
    # an unsafe prefix is refused here, before Spark starts
    table = versioned_table_name(table_prefix or config.table_prefix, config.version if version is None else version)
    with reported(f"ingesting into {table}", RuntimeError):  # a failed stream; a local stack that is not up
        spark = spark_session(f"ssp-ingest-{table}", infra_config)
        with progress_bar(f"ingesting into {table}", max_records) as advance:
            result = run_ingest(
                spark, infra=infra_config, config=config, topic=topic, table_prefix=table_prefix, version=version,
                max_records=max_records, until_idle=until_idle,
                checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, on_progress=advance,
            )
    click.echo(result.line())


@click.command("classify")
@click.option("--topic", default=None, help="Kafka topic to read (default: TopicsConfig.mix_tweets_topic).")
@click.option("--version", "version", type=int, default=None,
              help="Table version: writes classified_tweets_<v>, ai_tweets_<v> and ai_tweet_urls_<v> "
                   "(default: DatasetConfig.version). The model version is the server's newest, per micro-batch.")
@click.option("--threshold", type=float, default=None,
              help="P(AI) at or over which a tweet goes to ai_tweets_<v> (default: ClassifyConfig.threshold, else "
                   "the threshold in the model card of the model version in use, else 0.5).")
@click.option("--model-base-path", type=click.Path(file_okay=False), default=None,
              help="Folder of the served <version>/ folders, where their model cards are read (default: "
                   "ServeConfig.model_base_path, else <state dir>/models/<model name>, as `ssp serve`).")
@click.option("--model-url", default=None,
              help="Model server base URL, e.g. http://127.0.0.1:8501 (default: ClassifyConfig.model_url, else "
                   "http://<ServeConfig.host>:<ServeConfig.rest_api_port>).")
@click.option("--model-name", default=None, help="Model name on the server (default: ServeConfig.model_name).")
@click.option("--max-records", type=int, default=None, help="Stop after reading this many records.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Stop when no record arrived for this many seconds (waiting for the model server is not idle).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Spark checkpoint folder (default: under the state dir, per topic and table).")
@click.option("--parser", type=click.Choice(CLASSIFY_PARSERS), default=None,
              help="Who reads the tweets' JSON: python (ssp.tweets.parse_tweet in the Python workers) or sql (Spark "
                   "SQL where it reads a tweet exactly as parse_tweet does, Python for the rest) (default: "
                   "ClassifyConfig.parser, python).")
def classify(topic, version, threshold, model_base_path, model_url, model_name, max_records, until_idle,
             checkpoint_dir, parser) -> None:
    """Classify tweets from Kafka with the model server and write them to PostgreSQL (Spark Structured Streaming).

    Every tweet lands in classified_tweets_<v> with its P(AI) and the model version that gave it; those at or
    over the threshold (the model card's, unless given) in ai_tweets_<v>, and their links in ai_tweet_urls_<v>. Texts go to the server in
    batches over pooled connections. A new model version on the server is used from the next micro-batch on.
    While the server is down or failing, the micro-batch waits and runs again (the log says so) and nothing is
    written without a prediction. Stops on Ctrl-C or SIGTERM, after --max-records, or after --until-idle.
    """

    from ssp.infra.spark import spark_session
    from ssp.progress import progress_bar, summary
    from ssp.streaming.classify import classify_settings, run_classify

    if max_records is not None and until_idle is not None:
        raise SspError("give --max-records or --until-idle, not both")
    if max_records is not None and max_records < 1:
        raise click.BadParameter(f"must be at least 1, got {max_records}", param_hint="--max-records")
    if until_idle is not None and not until_idle > 0:
        raise click.BadParameter(f"must be above 0 seconds, got {until_idle}", param_hint="--until-idle")
    infra_config, config, serve = InfraConfig(), overridden(ClassifyConfig(), parser=parser), ServeConfig()
    with reported("reading the classify settings", ValueError):  # unsafe table names, a bad threshold or URL
        settings = classify_settings(config, serve, topic=topic, version=version, threshold=threshold,
                                     model_url=model_url, model_name=model_name, model_base_path=model_base_path)
    with reported("creating the classification tables", RuntimeError):  # a failed stream
        spark = spark_session(f"ssp-classify-{settings.tables.classified}", infra_config)
        with progress_bar(f"classifying {settings.topic} into {settings.tables.classified}", max_records) as advance:
            result = run_classify(
                spark, infra=infra_config, config=config, serve=serve, topic=topic, version=version,
                threshold=threshold, model_url=model_url, model_name=model_name, model_base_path=model_base_path,
                max_records=max_records,
                until_idle=until_idle, checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
                on_progress=advance,
            )
    summary(result.line())


if __name__ == "__main__":  # pragma: no cover
    import logging

    from ssp.config import load_config

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load_config()
    classify()
