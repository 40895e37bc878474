"""The ``ssp`` command: one subcommand per stage.

Gin files and bindings given before the subcommand configure every stage:
``ssp --gin-file my.gin --gin-param 'IngestConfig.version = 2' ingest``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click

from ssp.config import (
    ConfigError,
    InfraConfig,
    IngestConfig,
    ProducerConfig,
    TopicsConfig,
    load_config,
)


class SspError(click.ClickException):
    """An error shown to the user as one clear message, without a traceback."""


def _fail(err: Exception) -> SspError:
    return SspError(str(err))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--gin-file", "gin_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra gin file(s) on top of config/default_ssp_config.gin.")
@click.option("--gin-param", "gin_params", multiple=True, metavar="BINDING",
              help="A gin binding, e.g. 'IngestConfig.version = 2'. Repeatable.")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage is doing.")
@click.version_option(package_name="ssp")
def main(gin_files: tuple[str, ...], gin_params: tuple[str, ...], verbose: bool) -> None:
    """ssp: the Spark Streaming Playground, a streaming ML platform on Kafka, Spark and PostgreSQL."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        load_config(gin_files, gin_params)
    except ConfigError as err:
        raise _fail(err) from err


# ---------------------------------------------------------------- infra
@main.group()
def infra() -> None:
    """The local stack: Kafka (KRaft), PostgreSQL and the Spark connector jars."""


@infra.command("up")
def infra_up() -> None:
    """Start Kafka and PostgreSQL (idempotent: running services are left alone)."""
    from ssp.infra.process import InfraError
    from ssp.infra.stack import LocalStack

    stack = LocalStack.from_config()
    start = time.monotonic()
    try:
        for line in stack.up():
            click.echo(line, err=True)
    except (InfraError, OSError) as err:
        raise _fail(err) from err
    status = stack.status()
    click.echo(
        f"stack up in {time.monotonic() - start:.1f} s: kafka {status['kafka_bootstrap']}, "
        f"database {status['database_url']}"
    )


@infra.command("down")
def infra_down() -> None:
    """Stop the Kafka broker and the PostgreSQL server that ssp started."""
    from ssp.infra.stack import LocalStack

    for line in LocalStack.from_config().down():
        click.echo(line)


@infra.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def infra_status(as_json: bool) -> None:
    """Say whether the services run and where they listen."""
    from ssp.infra.stack import LocalStack

    status = LocalStack.from_config().status()
    if as_json:
        click.echo(json.dumps(status))
        return
    kafka = "running" if status["kafka"]["running"] else "stopped"
    postgres = "running" if status["postgres"]["running"] else "stopped"
    click.echo(f"kafka     {kafka:8} {status['kafka_bootstrap']}")
    click.echo(f"postgres  {postgres:8} {status['database_url']}")
    click.echo(f"spark     master   {status['spark_master']}")
    click.echo(f"state     {status['state_dir']}")


@infra.command("fetch")
def infra_fetch() -> None:
    """Fetch the pinned Kafka and Spark connector jars into the cache (done by `make install`)."""
    from ssp.infra.jars import JarFetchError
    from ssp.infra.stack import LocalStack

    try:
        click.echo("fetched " + ", ".join(LocalStack.from_config().fetch()))
    except JarFetchError as err:
        raise _fail(err) from err


# ---------------------------------------------------------------- produce
def _payloads(source: str, seed: int, path: str | None, loop: bool, max_records: int | None):
    if source == "synthetic":
        from ssp.sources.synthetic import synthetic_payloads

        return synthetic_payloads(max_records if max_records is not None else 10**12, seed=seed)
    if source == "replay":
        if not path:
            raise SspError("--source replay needs --path FILE_OR_DIR (a JSONL file or a folder of JSON files)")
        from ssp.sources.replay import replay_payloads

        try:
            return replay_payloads(path, loop=loop)
        except FileNotFoundError as err:
            raise _fail(err) from err
    if source == "twitter":
        from ssp.sources.twitter import MissingCredentialsError, TwitterStreamSource

        try:
            return iter(TwitterStreamSource(max_records=max_records))
        except MissingCredentialsError as err:
            raise _fail(err) from err
    raise SspError(f"unknown source {source!r}")


@main.command()
@click.option("--source", type=click.Choice(["synthetic", "replay", "twitter"]), default=None,
              help="Where tweets come from (default: ProducerConfig.source, synthetic).")
@click.option("--topic", default=None, help="Topic for every tweet (default: TopicsConfig.mix_tweets_topic).")
@click.option("--ai-topic/--no-ai-topic", default=True, show_default=True,
              help="Also send keyword-matched tweets to TopicsConfig.ai_tweets_topic.")
@click.option("--rate", type=float, default=None, help="Tweets per second (0 = as fast as possible).")
@click.option("--max-records", type=int, default=None, help="Stop after this many tweets.")
@click.option("--seed", type=int, default=None, help="Seed of the synthetic source.")
@click.option("--path", default=None, help="Replay: a JSONL file or a folder of JSON/JSONL files.")
@click.option("--loop", is_flag=True, help="Replay: start again at the end of the input.")
def produce(source, topic, ai_topic, rate, max_records, seed, path, loop) -> None:
    """Send tweets from a source into Kafka, keyed by tweet id."""
    from ssp.kafka.admin import KafkaUnavailableError, ensure_topic
    from ssp.kafka.producer import make_producer
    from ssp.kafka.producer import produce as produce_tweets

    infra_config, topics, config = InfraConfig(), TopicsConfig(), ProducerConfig()
    source = source or config.source
    topic = topic or topics.mix_tweets_topic
    rate = config.rate if rate is None else rate
    if max_records is None and not (source == "replay" and not loop) and source != "twitter":
        max_records = config.max_records
    if max_records is not None and max_records < 0:
        raise SspError(f"--max-records must be 0 or more, got {max_records}")
    if rate < 0:
        raise SspError(f"--rate must be 0 (unlimited) or more, got {rate}")
    payloads = _payloads(source, config.seed if seed is None else seed, path, loop, max_records)
    is_ai = None
    if ai_topic:
        from ssp.sources import load_ai_keywords, matches_ai_keywords
        from ssp.tweets import TweetParseError, parse_tweet

        keywords = load_ai_keywords()

        def is_ai(payload: dict) -> bool:
            try:
                return matches_ai_keywords(parse_tweet(payload).text, keywords)
            except TweetParseError:
                return False

    try:
        for name in {topic, topics.ai_tweets_topic} if ai_topic else {topic}:
            ensure_topic(infra_config.kafka_bootstrap, name, topics.partitions)
        producer = make_producer(infra_config.kafka_bootstrap, linger_ms=config.linger_ms,
                                 batch_size=config.batch_size, retries=config.retries,
                                 compression_type=config.compression_type)
        try:
            result = produce_tweets(payloads, producer, topic, ai_topic=topics.ai_tweets_topic if ai_topic else None,
                                    is_ai_text=is_ai, rate=rate, max_records=max_records)
        finally:
            producer.close()
    except (KafkaUnavailableError, *_source_errors(source)) as err:
        raise _fail(err) from err
    click.echo(result.line(topic, topics.ai_tweets_topic if ai_topic else None))


def _source_errors(source: str) -> tuple[type[Exception], ...]:
    """What a source raises mid-stream that the user should see as one clear message."""
    if source == "twitter":
        from ssp.sources.twitter import TwitterStreamError

        return (TwitterStreamError,)
    return ()


# ---------------------------------------------------------------- ingest
@main.command()
@click.option("--topic", default=None, help="Kafka topic to read (default: IngestConfig.topic).")
@click.option("--table-prefix", default=None, help="Table prefix (default: raw_tweet_dataset).")
@click.option("--version", "version", type=int, default=None, help="Dataset version: the table is <prefix>_<version>.")
@click.option("--max-records", type=int, default=None, help="Stop after reading this many records.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Stop when no record arrived for this many seconds.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Spark checkpoint folder (default: under the state dir, per topic and table).")
def ingest(topic, table_prefix, version, max_records, until_idle, checkpoint_dir) -> None:
    """Stream tweets from Kafka into the PostgreSQL table <prefix>_<version> (Spark Structured Streaming)."""
    from ssp.infra.process import InfraError
    from ssp.infra.spark import spark_session
    from ssp.progress import progress_bar
    from ssp.storage.tables import UnsafeIdentifierError, versioned_table_name
    from ssp.streaming.ingest import run_ingest

    if max_records is not None and until_idle is not None:
        raise SspError("give --max-records or --until-idle, not both")
    infra_config, config = InfraConfig(), IngestConfig()
    try:
        table = versioned_table_name(table_prefix or config.table_prefix, config.version if version is None else version)
    except UnsafeIdentifierError as err:
        raise _fail(err) from err
    try:
        spark = spark_session(f"ssp-ingest-{table}", infra_config)
        with progress_bar(f"ingesting into {table}", max_records) as advance:
            result = run_ingest(
                spark, infra=infra_config, config=config, topic=topic, table_prefix=table_prefix, version=version,
                max_records=max_records, until_idle=until_idle,
                checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None, on_progress=advance,
            )
    except (InfraError, RuntimeError) as err:
        raise _fail(err) from err
    click.echo(result.line())


# ---------------------------------------------------------------- demo
@main.command()
@click.option("--tweets", type=int, default=5000, show_default=True, help="Synthetic tweets to stream.")
@click.option("--version", "version", type=int, default=0, show_default=True, help="Dataset version to write.")
def demo(tweets: int, version: int) -> None:
    """Run the pipeline on the embedded default: local stack, synthetic stream, ingest into PostgreSQL."""
    ctx = click.get_current_context()
    start = time.monotonic()
    click.echo("[1/3] starting the local stack (Kafka, PostgreSQL)", err=True)
    ctx.invoke(infra_up)
    click.echo(f"[2/3] producing {tweets} synthetic tweets", err=True)
    ctx.invoke(produce, source="synthetic", topic=None, ai_topic=True, rate=None, max_records=tweets, seed=None,
               path=None, loop=False)
    click.echo("[3/3] ingesting them into PostgreSQL with Spark Structured Streaming", err=True)
    ctx.invoke(ingest, topic=None, table_prefix=None, version=version, max_records=None, until_idle=10.0,
               checkpoint_dir=None)
    from sqlalchemy import text

    from ssp.storage.postgres import make_engine
    from ssp.storage.tables import versioned_table_name

    table = versioned_table_name(IngestConfig().table_prefix, version)
    engine = make_engine(InfraConfig().database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    click.echo(f"demo done in {time.monotonic() - start:.1f} s: {table} holds {rows} tweets; "
               "stop the stack with `ssp infra down`")


# ---------------------------------------------------------------- stages with their own modules
def _register_stage_commands() -> None:
    from ssp.dataset.cli import dataset
    from ssp.labeling.cli import label
    from ssp.model.cli import train
    from ssp.serving.cli import serve
    from ssp.web.cli import dashboard

    for command in (dataset, label, train, serve, dashboard):
        main.add_command(command)


_register_stage_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
