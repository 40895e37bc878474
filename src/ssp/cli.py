"""The ``ssp`` command: one subcommand per stage, each defined in its stage's ``cli.py``.

Gin files and bindings given before the subcommand configure every stage:
``ssp --gin-file my.gin --gin-param 'DatasetConfig.version = 2' ingest``.

Errors: every domain error is an :class:`ssp.errors.SspError` (a ``click.ClickException``), so a
command lets it rise and click shows it once, as ``Error: <message>`` with exit code 1.
"""

from __future__ import annotations

import logging
import sys

import click

from ssp.config import load_config
from ssp.errors import SspError

__all__ = ["SspError", "main"]  # SspError is ssp.errors's; re-exported for code that imports it from here


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--gin-file", "gin_files", multiple=True, type=click.Path(dir_okay=False),
              help="Extra gin file(s) on top of config/default_ssp_config.gin.")
@click.option("--gin-param", "gin_params", multiple=True, metavar="BINDING",
              help="A gin binding, e.g. 'DatasetConfig.version = 2'. Repeatable.")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage is doing.")
@click.version_option(package_name="ssp")
def main(gin_files: tuple[str, ...], gin_params: tuple[str, ...], verbose: bool) -> None:
    """ssp: the Spark Streaming Playground, a streaming ML platform on Kafka, Spark and PostgreSQL."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    load_config(gin_files, gin_params)  # a bad gin file or binding is a ConfigError, an SspError


def _register_stage_commands() -> None:
    from ssp.active.cli import al
    from ssp.dataset.cli import dataset
    from ssp.demo import demo
    from ssp.evaluation.cli import evaluate
    from ssp.infra.cli import infra
    from ssp.kafka.cli import produce
    from ssp.labeling.cli import label
    from ssp.model.cli import train
    from ssp.repost.cli import repost
    from ssp.serving.cli import serve
    from ssp.streaming.cli import classify, ingest
    from ssp.streaming.cluster_cli import cluster
    from ssp.web.cli import dashboard
    from ssp.web.tagger_cli import tagger

    for command in (infra, produce, ingest, demo, dataset, label, train, serve, classify, dashboard, tagger, al,
                    evaluate, cluster, repost):
        main.add_command(command)
    from ssp.video.cli import video

    main.add_command(video)
    from ssp.users.cli import users

    main.add_command(users)


_register_stage_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
