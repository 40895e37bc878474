"""``ssp produce``: send posts from a source (synthetic, replay, X API) into Kafka, keyed by post id."""

from __future__ import annotations

import threading

import click

from ssp.config import InfraConfig, ProducerConfig, TopicsConfig
from ssp.errors import SspError
from ssp.signals import stop_on_sigterm


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
            raise SspError(str(err)) from err
    if source == "twitter":
        from ssp.sources.twitter import TwitterStreamSource

        return iter(TwitterStreamSource(max_records=max_records))
    raise SspError(f"unknown source {source!r}")


def _ai_text_test():
    """Whether a payload's text matches the AI keyword list (a payload that does not parse does not)."""
    from ssp.text import load_ai_keywords, matches_ai_keywords
    from ssp.tweets import TweetParseError, parse_tweet

    keywords = load_ai_keywords()

    def is_ai(payload: dict) -> bool:
        try:
            return matches_ai_keywords(parse_tweet(payload).text, keywords)
        except TweetParseError:
            return False

    return is_ai


@click.command("produce")
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
    from ssp.kafka.admin import ensure_topic
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
    is_ai = _ai_text_test() if ai_topic else None
    # a broker that cannot be reached, a source failing mid-stream: SspErrors, shown as one message
    for name in {topic, topics.ai_tweets_topic} if ai_topic else {topic}:
        ensure_topic(infra_config.kafka_bootstrap, name, topics.partitions)
    producer = make_producer(infra_config.kafka_bootstrap, linger_ms=config.linger_ms,
                             batch_size=config.batch_size, retries=config.retries,
                             compression_type=config.compression_type)
    # SIGTERM (a supervisor, `ssp demo`) ends a live stream as cleanly as Ctrl-C: flushed and summarised
    try:
        stop = threading.Event()
        with stop_on_sigterm(lambda *_: stop.set()):
            result = produce_tweets(payloads, producer, topic, ai_topic=topics.ai_tweets_topic if ai_topic else None,
                                    is_ai_text=is_ai, rate=rate, max_records=max_records, stop=stop)
    finally:
        producer.close()
    click.echo(result.line(topic, topics.ai_tweets_topic if ai_topic else None))
