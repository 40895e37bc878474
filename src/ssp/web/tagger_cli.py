"""``ssp tagger``: serve the annotation app where people give the dataset tables their gold labels."""

from __future__ import annotations

import click

from ssp.active.strategies import QUEUE_STRATEGIES
from ssp.config import ActiveLearningConfig, InfraConfig, WebConfig


@click.command("tagger")
@click.option("--host", default=None, help="Address to listen on (default: WebConfig.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None,
              help="Port to listen on; 0 picks a free one (default: WebConfig.tagger_port, 5002).")
@click.option("--strategy", type=click.Choice(QUEUE_STRATEGIES), default=None,
              help="The queue's default query strategy (default: ActiveLearningConfig.strategy); annotators can "
                   "pick another on the page.")
@click.option("--model-url", default=None, metavar="URL",
              help="A TF-Serving-compatible model server (e.g. http://127.0.0.1:8501, see `ssp serve`). With it "
                   "the queue is ranked by the model's P(AI), and every ActiveLearningConfig.retrain_every new "
                   "labels the model is retrained, served and the queue rescored. Without it, Snorkel's "
                   "probabilities rank the queue.")
@click.option("--retrain-every", type=click.IntRange(min=1), default=None,
              help="Retrain after this many new labels (default: ActiveLearningConfig.retrain_every).")
def tagger(host: str | None, port: int | None, strategy: str | None, model_url: str | None,
           retrain_every: int | None) -> None:
    """Serve the tagger: annotators sign in with their name and the shared token in $SSP_TAGGER_TOKEN, pick a
    dataset table and label its tweets with the keyboard (a = AI, x = not AI, space = skip, backspace = undo),
    unlabelled ones most informative first. Labels go to the table's `label` column and to the label_history
    table; the app also shows progress and annotator agreement, exports labels (CSV, JSONL, parquet) and imports
    them from CSV. A sign-in lasts WebConfig.tagger_session_hours (12) or until sign-out; a restart signs
    everyone out. Stop with Ctrl-C.
    """
    import dataclasses

    from ssp.progress import summary
    from ssp.web.common import check_database, serve_command
    from ssp.web.tagger import EXTENSION, create_app

    config = WebConfig()
    al_config = ActiveLearningConfig()
    if strategy is not None:
        al_config = dataclasses.replace(al_config, strategy=strategy)
    if retrain_every is not None:
        al_config = dataclasses.replace(al_config, retrain_every=retrain_every)
    host = host or config.host
    port = config.tagger_port if port is None else port
    app = create_app({"SSP_DATABASE_URL": InfraConfig().database_url, "SSP_WEB": config, "SSP_AL": al_config,
                      "SSP_MODEL_URL": model_url})
    state = app.extensions[EXTENSION]
    data = state["data"]
    tables = check_database(data.engine, "tagger", lambda: [t["name"] for v in data.tables() for t in v["tables"]])
    if not tables:
        click.echo("warning: no dataset tables yet; run `ssp dataset prepare` (the tagger shows them once there)",
                   err=True)
    if state["loop"] is not None:
        try:
            version = state["loop"].client.available_version(retries=0)
            click.echo(f"model server {model_url}: serving version {version}" if version is not None else
                       f"warning: model server {model_url} has no model version loaded yet", err=version is None)
        except Exception as err:  # the tagger still serves; the queue page shows scoring errors
            click.echo(f"warning: model server {model_url} does not answer ({err}); the queue uses Snorkel's "
                       "probabilities until it does", err=True)

    def announce(url: str) -> None:
        click.echo(f"tagger on {url} with {len(tables)} dataset table(s), queue order {al_config.strategy} "
                   "(Ctrl-C stops it)")

    seconds = serve_command(app, data.engine, host, port, announce)
    labels = state["stats"]["labels"]
    summary(f"tagger stopped after {seconds:.0f} s: {labels} label(s) written")
