"""``ssp dashboard``: serve the AI-tweets dashboard for one version's classification tables."""

from __future__ import annotations

import click

from ssp.config import ClassifyConfig, InfraConfig, WebConfig


@click.command("dashboard")
@click.option("--version", type=click.IntRange(min=0), default=None,
              help="Which classify run to show: the tables *_<version> (default: DatasetConfig.version).")
@click.option("--host", default=None, help="Address to listen on (default: WebConfig.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None,
              help="Port to listen on; 0 picks a free one (default: WebConfig.dashboard_port, 5001).")
def dashboard(version: int | None, host: str | None, port: int | None) -> None:
    """Serve the AI-tweets dashboard: the AI tweets with their links, a live view with a per-minute chart and
    the top link domains, every classified tweet, and a JSON API behind each view. Read-only; stop with Ctrl-C.
    """
    from ssp.progress import summary
    from ssp.web.common import check_database, serve_command
    from ssp.web.dashboard import TablesMissingError, create_app

    config = WebConfig()
    version = ClassifyConfig().version if version is None else version
    host = host or config.host
    port = config.dashboard_port if port is None else port
    app = create_app(InfraConfig().database_url, version, config)
    data = app.extensions["ssp_dashboard"]
    try:
        check_database(data.engine, "dashboard", data.require_tables)
    except TablesMissingError as err:
        # the dashboard still starts: its pages say this and show the tweets once classify runs
        click.echo(f"warning: {err}", err=True)

    def announce(url: str) -> None:
        click.echo(f"dashboard for version {version} on {url} (Ctrl-C stops it)")

    seconds = serve_command(app, data.engine, host, port, announce)
    summary(f"dashboard for version {version} stopped after {seconds:.0f} s")
