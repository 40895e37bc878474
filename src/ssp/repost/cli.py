"""``ssp repost``: repost the AI posts that carry links, on X or Bluesky, once each, within the limits.

``python -m ssp.repost.cli`` runs the command alone, with the default gin file.
"""

from __future__ import annotations

from datetime import timedelta

import click

from ssp.config import InfraConfig, RepostConfig, ServeConfig, TrainConfig, overridden
from ssp.errors import SspError, reported


def repost_settings(config: RepostConfig, dry_run: bool):
    """The run's settings from RepostConfig (already overridden by the flags)."""
    from ssp.repost.run import RepostSettings, threshold_lookup
    from ssp.serving.layout import served_model_folder
    from ssp.storage.tables import AI_TWEETS_TABLE_PREFIX, validate_identifier, versioned_table_name

    if config.platform not in ("x", "bluesky"):
        raise SspError(f"RepostConfig.platform must be x or bluesky, got {config.platform!r}")
    if config.mode not in ("review", "auto"):
        raise SspError(f"RepostConfig.mode must be review or auto, got {config.mode!r}")
    if config.max_per_hour < 0 or config.link_window_hours < 0:
        raise SspError("--max-per-hour and RepostConfig.link_window_hours must be 0 or more")
    serve = ServeConfig()
    base_path = served_model_folder(serve.model_name, TrainConfig().models_path, serve.model_base_path)
    min_prob, min_prob_text = threshold_lookup(config.min_prob, config.fallback_min_prob, base_path)
    return RepostSettings(
        platform=config.platform, ai_table=versioned_table_name(AI_TWEETS_TABLE_PREFIX, config.version),
        ledger_table=validate_identifier(config.table, "RepostConfig.table"), mode=config.mode, dry_run=dry_run,
        min_prob=min_prob, min_prob_text=min_prob_text, max_per_hour=config.max_per_hour,
        link_window=timedelta(hours=config.link_window_hours),
        blocked_domains=tuple(d.lower() for d in config.blocked_domains), max_attempts=config.max_attempts,
        max_wait_seconds=config.max_wait_seconds,
    )


@click.command("repost")
@click.option("--platform", type=click.Choice(["x", "bluesky"]), default=None,
              help="Where to repost (default: RepostConfig.platform); only that platform's posts are candidates.")
@click.option("--version", "version", type=int, default=None,
              help="Read ai_tweets_<version> (default: RepostConfig.version, else DatasetConfig.version).")
@click.option("--mode", type=click.Choice(["review", "auto"]), default=None,
              help="review: repost what reviewers approved on the dashboard's Reposts page; auto: every candidate "
                   "at or over --min-prob (default: RepostConfig.mode).")
@click.option("--min-prob", type=click.FloatRange(0, 1), default=None,
              help="Lowest P(AI) of a candidate (default: the model card's threshold of the version that scored "
                   "the post, else RepostConfig.fallback_min_prob).")
@click.option("--max-per-hour", type=click.IntRange(min=0), default=None,
              help="Most reposts in any hour (default: RepostConfig.max_per_hour).")
@click.option("--dry-run/--no-dry-run", default=True, show_default=True,
              help="Only print (and record as dry_run) what would be reposted and why; needs no credentials.")
def repost(platform, version, mode, min_prob, max_per_hour, dry_run) -> None:
    """Repost AI posts with links from ai_tweets_<v> on X or Bluesky: each at most once, within rate limits.

    Credentials come from the environment only: X: SSP_X_CONSUMER_KEY, SSP_X_CONSUMER_SECRET, SSP_X_ACCESS_TOKEN,
    SSP_X_ACCESS_TOKEN_SECRET (OAuth 1.0a) or SSP_X_USER_TOKEN (OAuth 2.0 user token); Bluesky:
    SSP_BLUESKY_HANDLE and SSP_BLUESKY_APP_PASSWORD.
    """
    from ssp.repost.clients import make_client
    from ssp.repost.run import run_repost
    from ssp.storage.postgres import make_engine

    config = overridden(RepostConfig(), platform=platform, version=version, mode=mode, min_prob=min_prob,
                        max_per_hour=max_per_hour)
    settings = repost_settings(config, dry_run)
    client = None if dry_run else make_client(settings.platform, x_api_url=config.x_api_url,
                                              bluesky_pds_url=config.bluesky_pds_url,
                                              timeout=config.request_timeout_seconds)
    engine = make_engine(InfraConfig().database_url)
    try:
        with reported(f"reposting from {settings.ai_table}"):
            result = run_repost(engine, settings, client, echo=click.echo)
    finally:
        engine.dispose()
    click.echo(result.line())


if __name__ == "__main__":  # pragma: no cover
    from ssp.config import load_config

    load_config()
    repost()
