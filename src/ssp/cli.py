"""The ``ssp`` command: one subcommand per stage.

Gin files and bindings given before the subcommand configure every stage:
``ssp --gin-file my.gin --gin-param 'IngestConfig.version = 2' ingest``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
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
from ssp.errors import SspError

__all__ = ["SspError", "main"]  # SspError is ssp.errors's; re-exported for code that imports it from here


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
        # SIGTERM (a supervisor, `ssp demo`) ends a live stream as cleanly as Ctrl-C: flushed and summarised
        previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            result = produce_tweets(payloads, producer, topic, ai_topic=topics.ai_tweets_topic if ai_topic else None,
                                    is_ai_text=is_ai, rate=rate, max_records=max_records)
        finally:
            signal.signal(signal.SIGTERM, previous)
            producer.close()
    except (KafkaUnavailableError, *_source_errors(source)) as err:
        raise _fail(err) from err
    click.echo(result.line(topic, topics.ai_tweets_topic if ai_topic else None))


def _raise_keyboard_interrupt(*_) -> None:
    raise KeyboardInterrupt


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
@click.option("--tweets", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Synthetic tweets for the first dataset.")
@click.option("--version", "version", type=click.IntRange(min=0), default=0, show_default=True,
              help="Dataset version for every table of the run.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=20.0, show_default=True,
              help="Tweets per second of the live synthetic stream the classifier sees.")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Stop after this many seconds of running services (default: until Ctrl-C).")
@click.pass_context
def demo(ctx: click.Context, tweets: int, version: int, rate: float, duration: float | None) -> None:
    """The whole cycle on the embedded default: local stack, synthetic stream, ingest, dataset, Snorkel labels,
    a first model; then the model server, live classification, the dashboard and the tagger, with their URLs.
    Ctrl-C stops everything."""
    from ssp.config import ServeConfig, WebConfig
    from ssp.demo import Child, demo_log_dir, new_token, run_services, ssp_argv, wait_for_http

    start = time.monotonic()
    steps = 9

    def step(n: int, text: str) -> None:
        click.echo(f"[{n}/{steps}] {text}", err=True)

    step(1, "starting the local stack (Kafka, PostgreSQL)")
    ctx.invoke(infra_up)
    step(2, f"producing {tweets:,} synthetic tweets into Kafka")
    ctx.invoke(produce, source="synthetic", topic=None, ai_topic=True, rate=0.0, max_records=tweets, seed=None,
               path=None, loop=False)
    step(3, "ingesting them into PostgreSQL with Spark Structured Streaming")
    ctx.invoke(ingest, topic=None, table_prefix=None, version=version, max_records=None, until_idle=10.0,
               checkpoint_dir=None)
    step(4, "deduplicating and splitting the dataset")
    from ssp.dataset.cli import prepare

    ctx.invoke(prepare, version=version, overwrite=False)
    step(5, "weak labels with Snorkel")
    from ssp.labeling.cli import label

    ctx.invoke(label, version=version, engine=None)
    step(6, "training the classifier and exporting a model version")
    from ssp.model.cli import train

    ctx.invoke(train, version=version, architecture=None, epochs=None, model_dir=None)

    root = ctx.find_root().params
    gin = {"gin_files": tuple(root.get("gin_files") or ()), "gin_params": tuple(root.get("gin_params") or ())}
    serve_config, web = ServeConfig(), WebConfig()
    logs = demo_log_dir()
    token = os.environ.get("SSP_TAGGER_TOKEN") or new_token()
    model_url = f"http://{serve_config.host}:{serve_config.rest_api_port}"
    children = [
        Child("model server", ssp_argv("serve", **gin), logs / "serve.log"),
        Child("classify stream", ssp_argv("classify", "--version", str(version), **gin), logs / "classify.log"),
        Child("live synthetic tweets", ssp_argv("produce", "--rate", str(rate), "--max-records", str(10**9),
                                                "--seed", str(int(time.time())), **gin), logs / "produce.log"),
        Child("dashboard", ssp_argv("dashboard", "--version", str(version), **gin), logs / "dashboard.log"),
        Child("tagger", ssp_argv("tagger", "--model-url", model_url, **gin), logs / "tagger.log",
              env={"SSP_TAGGER_TOKEN": token}),
    ]
    urls = {
        "model server": f"{model_url}/v1/models/{serve_config.model_name}",
        "dashboard": f"http://{web.host}:{web.dashboard_port}/",
        "live view": f"http://{web.host}:{web.dashboard_port}/live",
        "tagger": f"http://{web.host}:{web.tagger_port}/",
    }
    started: list = []
    try:
        step(7, f"starting the model server (log: {children[0].log_path})")
        children[0].start()
        started.append(children[0])
        wait_for_http(urls["model server"], children[0], 120)
        step(8, f"starting live classification and a live synthetic stream at {rate:g} tweets/s (logs in {logs})")
        for child in children[1:3]:
            child.start()
            started.append(child)
        step(9, "starting the dashboard and the tagger")
        for child, url in ((children[3], urls["dashboard"]), (children[4], urls["tagger"])):
            child.start()
            started.append(child)
            wait_for_http(url, child, 60)
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise
    click.echo(f"demo ready in {time.monotonic() - start:.0f} s; sign in to the tagger with any name and the token "
               f"{token}" + ("" if os.environ.get("SSP_TAGGER_TOKEN") else " (set SSP_TAGGER_TOKEN to choose it)"))
    run_services(started, urls, duration, lambda line: click.echo(line, err=True))
    click.echo(f"demo stopped after {time.monotonic() - start:.0f} s; the stack is still up (`ssp infra down` stops it)")


# ---------------------------------------------------------------- stages with their own modules
def _register_stage_commands() -> None:
    from ssp.active.cli import al
    from ssp.dataset.cli import dataset
    from ssp.evaluation.cli import evaluate
    from ssp.labeling.cli import label
    from ssp.model.cli import train
    from ssp.serving.cli import serve
    from ssp.streaming.cli import classify
    from ssp.web.cli import dashboard
    from ssp.web.tagger_cli import tagger

    for command in (dataset, label, train, serve, classify, dashboard, tagger, al, evaluate):
        main.add_command(command)


_register_stage_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
