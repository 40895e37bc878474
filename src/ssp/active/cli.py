"""``ssp al``: the active-learning loop: ``retrain`` on new gold labels, ``simulate`` the learning curves."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import click

from ssp.active.simulate import (
    CSV_FILE,
    PNG_FILE,
    UNCERTAINTY,
    SimulationError,
    dataset_data,
    plot_learning_curves,
    simulate,
    simulation_config,
    synthetic_data,
    trainings,
    write_csv,
)
from ssp.active.strategies import STRATEGIES
from ssp.config import ActiveLearningConfig, InfraConfig, TrainConfig, default_state_dir


def _quiet_tensorflow() -> None:
    # TensorFlow's start-up notices and Keras's retracing warnings (one new model per round is the
    # point here) would bury the progress bar and the summary; real errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _database_error(err: Exception, what: str) -> click.ClickException:
    detail = str(getattr(err, "orig", None) or err).strip()
    return click.ClickException(f"could not {what}: {detail}")


@click.group("al")
def al() -> None:
    """Active learning: retrain on the tagger's gold labels, and the learning-curve experiment."""


@al.command("retrain")
@click.option("--version", "version", type=click.IntRange(min=0), default=None,
              help="Dataset version whose labels to train on (default: TrainConfig.version).")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Where models go: <model-dir>/<model_name>/<N>/ (default: TrainConfig.model_dir, "
                   "else $SSP_STATE_DIR/models).")
def retrain_command(version: int | None, model_dir: str | None) -> None:
    """Train a new model version on the current gold and Snorkel labels and export it.

    The model server polls the model folder and serves the new version as soon as it appears;
    the classify job asks the server, so it uses the new version too. The tagger runs the same
    retrain by itself every ActiveLearningConfig.retrain_every new labels.
    """
    _quiet_tensorflow()
    from sqlalchemy.exc import SQLAlchemyError

    from ssp.active.retrain import retrain
    from ssp.model.export import ExportError
    from ssp.model.train import format_metrics
    from ssp.progress import progress_bar, summary

    config = TrainConfig()
    if model_dir is not None:
        config = dataclasses.replace(config, model_dir=model_dir)
    version = config.version if version is None else version
    try:
        with progress_bar(f"retraining {config.model_name} on dataset {version}", config.epochs) as advance:
            result = retrain(InfraConfig().database_url, version, config, on_epoch=lambda epoch, logs: advance())
    except (ExportError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    except SQLAlchemyError as err:
        raise _database_error(err, "read the dataset tables") from err
    click.echo(f"new model version {result.model_version} at {result.path}")
    if result.metrics is not None:
        click.echo(f"metrics on {result.test_rows} {result.metrics_source} test labels:")
        for line in format_metrics(result.metrics):
            click.echo(line)
    for note in result.notes:
        click.echo(f"note: {note}")
    summary(result.line())


@al.command("simulate")
@click.option("--version", "version", type=click.IntRange(min=0), default=None,
              help="Pool: the gold-labelled rows of train_dataset_<version>, tested on test_dataset_<version>'s "
                   "(default: TrainConfig.version, unless --synthetic).")
@click.option("--synthetic", type=click.IntRange(min=20), default=None, metavar="N",
              help="Pool: N synthetic tweets (deduplicated, a quarter kept as the test set), the generator's "
                   "truth as the annotator; needs no database.")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Rounds of asking (default: ActiveLearningConfig.simulate_rounds).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Labels asked per round (default: ActiveLearningConfig.simulate_batch).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Repetitions with different initial labels (default: ActiveLearningConfig.simulate_seeds).")
@click.option("--initial", type=click.IntRange(min=1), default=None,
              help="Random labels to start from, the same for every strategy of a seed "
                   "(default: ActiveLearningConfig.simulate_initial).")
@click.option("--strategy", "strategies", multiple=True, default=("least_confidence", "random"), show_default=True,
              type=click.Choice(STRATEGIES),
              help="Strategies to compare (repeat the option); the headline ratio needs least_confidence and random.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs per round, no early stopping; the architecture comes from TrainConfig "
                   "(default: ActiveLearningConfig.simulate_epochs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for learning_curves.csv and learning_curves.png (default: $SSP_STATE_DIR/active_learning).")
def simulate_command(version: int | None, synthetic: int | None, rounds: int | None, batch: int | None,
                     seeds: int | None, initial: int | None, strategies: tuple[str, ...], epochs: int | None,
                     out_dir: str | None) -> None:
    """The learning-curve experiment: uncertainty sampling against random sampling, a labelled pool as the annotator.

    Each round trains the classifier on the labelled rows, lets each strategy pick --batch more
    from the pool, and measures F1 (AI) on a fixed gold test set. Writes learning_curves.csv
    (strategy, seed, round, labels, f1) and learning_curves.png (mean F1 with a band of one
    standard deviation over seeds, against the number of labels). The last line printed is one JSON
    object; uncertainty_labels_over_random is the labels least_confidence's mean curve needs to
    reach random's final mean F1, over random's final label count (null if it never does).
    """
    _quiet_tensorflow()
    from sqlalchemy.exc import SQLAlchemyError

    from ssp.progress import progress_bar, summary

    if version is not None and synthetic is not None:
        raise click.UsageError("give --version or --synthetic, not both")
    settings = ActiveLearningConfig()
    rounds = settings.simulate_rounds if rounds is None else rounds
    batch = settings.simulate_batch if batch is None else batch
    seeds = settings.simulate_seeds if seeds is None else seeds
    initial = settings.simulate_initial if initial is None else initial
    epochs = settings.simulate_epochs if epochs is None else epochs
    out = Path(out_dir) if out_dir else default_state_dir() / "active_learning"
    train_config = TrainConfig()
    config = simulation_config(train_config, epochs)
    start = time.monotonic()
    try:
        if synthetic is not None:
            data = synthetic_data(synthetic)
        else:
            data = dataset_data(InfraConfig().database_url, train_config.version if version is None else version)
        out.mkdir(parents=True, exist_ok=True)
        with progress_bar(f"simulating on {data.source}", trainings(strategies, rounds, seeds)) as advance:
            result = simulate(data, strategies, rounds=rounds, batch=batch, seeds=seeds, initial=initial,
                              config=config, on_round=lambda *_: advance())
    except (SimulationError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    except SQLAlchemyError as err:
        raise _database_error(err, "read the dataset tables") from err
    write_csv(result, out / CSV_FILE)
    plot_learning_curves(result, out / PNG_FILE,
                         f"Learning curves on {data.source}: {result.seeds} seed(s), {result.batch} labels a round")
    figures = {**result.figures(), "source": data.source, **data.details,
               "csv": str(out / CSV_FILE), "png": str(out / PNG_FILE), "seconds": round(time.monotonic() - start, 1)}
    finals = ", ".join(f"{s} {f:.3f}" for s, f in figures["final_f1"].items())
    ratio = figures["uncertainty_labels_over_random"]
    reach = ("never reached random's final F1" if ratio is None and figures["random_final_f1"] is not None
             else "no ratio" if ratio is None else f"{ratio:.2f} x random's labels to reach its final F1")
    summary(f"simulated {len(result.strategies)} strategies x {result.seeds} seeds x {result.rounds} rounds on "
            f"{result.pool_size} pool / {result.test_size} test tweets in {figures['seconds']:.1f} s: final F1 "
            f"{finals} at {figures['final_labels']} labels; {UNCERTAINTY}: {reach}; wrote {out / CSV_FILE}")
    click.echo(json.dumps(figures))

