"""``ssp train``: train the text classifier on a dataset version and export the next model version."""

from __future__ import annotations

import os

import click

from ssp.config import InfraConfig, TrainConfig, overridden
from ssp.errors import reported


@click.command("train")
@click.option("--version", "version", type=int, default=None,
              help="Dataset version: reads train_/dev_/test_dataset_<version> (default: DatasetConfig.version).")
@click.option("--architecture", type=click.Choice(["ngram_pool", "embedding_pool", "bilstm"]), default=None,
              help="Model: word and character n-gram embeddings averaged (robust to unseen words), word embeddings "
                   "averaged, or a bidirectional LSTM (default: TrainConfig.architecture).")
@click.option("--epochs", type=int, default=None, help="Most epochs to train; early stopping on dev may end sooner.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Where models go: <model-dir>/<model_name>/<N>/ (default: TrainConfig.model_dir, "
                   "else $SSP_STATE_DIR/models).")
def train(version: int | None, architecture: str | None, epochs: int | None, model_dir: str | None) -> None:
    """Train the AI-tweet classifier and export it as the next SavedModel version.

    Targets are gold labels where the tagger set them and Snorkel's probabilities elsewhere;
    training stops early on the dev split; the decision threshold is chosen on dev's gold labels
    (TrainConfig.threshold_rule); metrics at that threshold are computed on the gold test labels and
    saved with it in the model card (model_card.json) beside the SavedModel, where `ssp classify` reads it.
    """
    # TensorFlow's C++ start-up notices would bury the summary; real warnings still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ssp.model.train import format_metrics, run_training
    from ssp.progress import progress_bar

    config = overridden(TrainConfig(), version=version, architecture=architecture, epochs=epochs, model_dir=model_dir)
    # TrainingDataError is a ValueError that names its input
    with reported("reading the dataset tables", ValueError, OSError), \
            progress_bar(f"training {config.model_name} on dataset {config.version}", config.epochs) as advance:
        summary = run_training(InfraConfig().database_url, config, on_epoch=lambda epoch, logs: advance())
    if summary.metrics is not None:
        source = "gold test labels" if summary.metrics_source == "gold" else "Snorkel test labels (no gold test labels)"
        click.echo(f"metrics on {summary.test_rows} {source}:")
        for line in format_metrics(summary.metrics):
            click.echo(line)
    for note in summary.notes:
        click.echo(f"note: {note}")
    click.echo(summary.line())
