"""``ssp produce``: send posts from a source (synthetic, replay, X API), or points for the clustering
use cases, into Kafka, keyed by id."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import click

from ssp.config import BlueskyConfig, InfraConfig, ProducerConfig, TopicsConfig
from ssp.errors import SspError
from ssp.signals import stop_on_sigterm

SOURCES = ("synthetic", "replay", "twitter", "bluesky", "points", "video")


def _points(config: ProducerConfig, seed: int, rate: float, k: int | None, dim: int | None,
            scenario: str | None):
    """The points source: ``scenario`` is a preset name, a scenario as JSON text, or a JSON file's path."""
    from ssp.sources.points import points_payloads

    scenario = config.points_scenario if scenario is None else scenario
    if scenario.strip().endswith(".json") and not scenario.lstrip().startswith("{"):
        try:
            scenario = Path(scenario).read_text(encoding="utf-8")
        except OSError as err:
            raise SspError(f"--scenario {scenario}: cannot read the scenario file ({err.strerror})") from err
    try:
        return points_payloads(None, seed=seed, k=config.points_k if k is None else k,
                               dim=config.points_dim if dim is None else dim,
                               rate=rate if rate > 0 else config.points_stream_rate, scenario=scenario)
    except ValueError as err:  # a ScenarioError, or a bad rate or seed: named with the flag
        raise SspError(f"--source points: {err}") from err


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
    if source == "bluesky":
        return _bluesky(max_records)
    raise SspError(f"unknown source {source!r}")


def _bluesky(max_records: int | None):
    """The Jetstream source with BlueskyConfig's address, DIDs, cursor file and backoff."""
    from ssp.sources.bluesky import JetstreamSource, default_cursor_path

    config = BlueskyConfig()
    url = os.environ.get("SSP_JETSTREAM_URL") or config.jetstream_url
    return JetstreamSource(url, wanted_dids=config.wanted_dids, max_records=max_records,
                           cursor_file=config.cursor_file or default_cursor_path(url),
                           rewind_seconds=config.rewind_seconds, max_retries=config.max_retries,
                           first_backoff=config.first_backoff_seconds, max_backoff=config.max_backoff_seconds,
                           zstd_dictionary=config.zstd_dictionary or None)


def _ai_text_test():
    """Whether a payload's text matches the AI keyword list (a payload that does not parse does not)."""
    from ssp.text import KeywordMatcher, load_ai_keywords, matches_ai_keywords
    from ssp.tweets import TweetParseError, parse_tweet

    # compiled once: given the list, every call would hash the whole keyword tuple to find its cached matcher
    keywords = KeywordMatcher(load_ai_keywords())

    def is_ai(payload: dict) -> bool:
        try:
            return matches_ai_keywords(parse_tweet(payload).text, keywords)
        except TweetParseError:
            return False

    return is_ai


@click.command("produce")
@click.option("--source", type=click.Choice(SOURCES), default=None,
              help="Where records come from (default: ProducerConfig.source, synthetic). bluesky: public "
                   "Bluesky posts, live from Jetstream (no account needed; BlueskyConfig). points: a drifting "
                   "Gaussian mixture for the clustering use cases.")
@click.option("--topic", default=None,
              help="Topic for every record (default: TopicsConfig.mix_tweets_topic; for points "
                   "TopicsConfig.points_topic).")
@click.option("--ai-topic/--no-ai-topic", default=None,
              help="Also send keyword-matched tweets to TopicsConfig.ai_tweets_topic (default: on for tweets).")
@click.option("--rate", type=float, default=None, help="Records per second (0 = as fast as possible).")
@click.option("--max-records", type=int, default=None, help="Stop after this many records.")
@click.option("--seed", type=int, default=None, help="Seed of the synthetic and points sources.")
@click.option("--path", default=None, help="Replay: a JSONL file or a folder of JSON/JSONL files. Video: a video "
                                            "file (default: the generated test video).")
@click.option("--loop", is_flag=True, help="Replay: start again at the end of the input (video: of the file).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Video: frames per second of stream time, and the sending rate unless --rate is given "
                   "(default: VideoConfig.fps).")
@click.option("--k", "k", type=click.IntRange(min=1), default=None,
              help="Points: mixture centres (default: ProducerConfig.points_k).")
@click.option("--dim", type=click.IntRange(min=1), default=None,
              help="Points: coordinates per point (default: ProducerConfig.points_dim).")
@click.option("--scenario", default=None, metavar="PRESET|JSON|FILE.json",
              help="Points: how the centres move: static, drift or events (drift, a jump, a birth and a death), "
                   "or a scenario as JSON (default: ProducerConfig.points_scenario).")
def produce(source, topic, ai_topic, rate, max_records, seed, path, loop, fps, k, dim, scenario) -> None:
    """Send tweets (or points) from a source into Kafka, keyed by id."""
    from ssp.kafka.admin import ensure_topic
    from ssp.kafka.producer import make_producer
    from ssp.kafka.producer import produce as produce_records

    infra_config, topics, config = InfraConfig(), TopicsConfig(), ProducerConfig()
    source = source or config.source
    if source not in SOURCES:
        raise SspError(f"ProducerConfig.source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "video":  # binary frame records keyed by video id (ssp.video.produce)
        from ssp.video.produce import produce_video

        stop = threading.Event()
        with stop_on_sigterm(lambda *_: stop.set()):
            click.echo(produce_video(path=path, topic=topic, fps=fps, loop=loop, max_frames=max_records, rate=rate,
                                     stop=stop).line())
        return
    if fps is not None:
        raise SspError("--fps paces a video; use it with --source video")
    points = source == "points"
    if points and ai_topic:
        raise SspError("--ai-topic routes tweets by their text; points have none (leave it out for --source points)")
    if not points and (k, dim, scenario) != (None, None, None):
        raise SspError("--k, --dim and --scenario shape the points source; use them with --source points")
    ai_topic = not points if ai_topic is None else ai_topic
    topic = topic or (topics.points_topic if points else topics.mix_tweets_topic)
    rate = config.rate if rate is None else rate
    if max_records is None and not (source == "replay" and not loop) and source not in ("twitter", "bluesky"):
        max_records = config.max_records
    if max_records is not None and max_records < 0:
        raise SspError(f"--max-records must be 0 or more, got {max_records}")
    if rate < 0:
        raise SspError(f"--rate must be 0 (unlimited) or more, got {rate}")
    seed = config.seed if seed is None else seed
    payloads = _points(config, seed, rate, k, dim, scenario) if points else \
        _payloads(source, seed, path, loop, max_records)
    is_ai = _ai_text_test() if ai_topic else None
    # a broker that cannot be reached, a source failing mid-stream: SspErrors, shown as one message
    for name in {topic, topics.ai_tweets_topic} if ai_topic else {topic}:
        ensure_topic(infra_config.kafka_bootstrap, name, topics.partitions)
    producer = make_producer(infra_config.kafka_bootstrap, linger_ms=config.linger_ms,
                             batch_size=config.batch_size, retries=config.retries,
                             compression_type=config.compression_type)
    # a live Bluesky stream saves its resume cursor as Kafka acknowledges what came before it
    checkpoints = payloads.checkpointing(producer.flush, BlueskyConfig().checkpoint_seconds) \
        if source == "bluesky" else contextlib.nullcontext()
    # SIGTERM (a supervisor, `ssp demo`) ends a live stream as cleanly as Ctrl-C: flushed and summarised
    try:
        stop = threading.Event()
        on_stop = getattr(payloads, "stop", lambda: None)  # a live source waiting for its next message
        with stop_on_sigterm(lambda *_: (stop.set(), on_stop())), checkpoints:
            result = produce_records(payloads, producer, topic,
                                     ai_topic=topics.ai_tweets_topic if ai_topic else None,
                                     is_ai_text=is_ai, rate=rate, max_records=max_records, stop=stop)
    finally:
        producer.close()
    line = result.line(topic, topics.ai_tweets_topic if ai_topic else None, "points" if points else "tweets")
    if source == "bluesky":  # what Jetstream sent besides new posts: counted, skipped
        line += f" (Jetstream: {payloads.summary() or 'no other events'})"
    click.echo(line)
