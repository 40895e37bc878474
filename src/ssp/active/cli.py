"""``ssp al``: the active-learning loop: ``retrain`` on new gold labels, ``simulate`` the learning curves."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import click

from ssp.active.simulate import (
    FROM_SCRATCH,
    SETTINGS,
    UNCERTAINTY,
    WORKFLOW,
    SimulationData,
    dataset_data,
    gold_data,
    output_names,
    plot_learning_curves,
    round_config,
    simulate,
    synthetic_data,
    trainings,
    write_csv,
)
from ssp.active.strategies import STRATEGIES
from ssp.config import ActiveLearningConfig, InfraConfig, LabelConfig, TrainConfig, default_state_dir, overridden
from ssp.errors import reported


def _quiet_tensorflow() -> None:
    # TensorFlow's start-up notices and Keras's retracing warnings (one new model per round is the
    # point here) would bury the progress bar and the summary; real errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@click.group("al")
def al() -> None:
    """Active learning: retrain on the tagger's gold labels, and the learning-curve experiment."""


@al.command("retrain")
@click.option("--version", "version", type=click.IntRange(min=0), default=None,
              help="Dataset version whose labels to train on (default: DatasetConfig.version).")
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
    from ssp.active.retrain import retrain
    from ssp.model.train import format_metrics
    from ssp.progress import progress_bar, summary

    config = overridden(TrainConfig(), model_dir=model_dir, version=version)
    version = config.version
    with reported("reading the dataset tables", ValueError, OSError), \
            progress_bar(f"retraining {config.model_name} on dataset {version}", config.epochs) as advance:
        result = retrain(InfraConfig().database_url, version, config, on_epoch=lambda epoch, logs: advance())
    click.echo(f"new model version {result.model_version} at {result.path}")
    if result.metrics is not None:
        click.echo(f"metrics on {result.test_rows} {result.metrics_source} test labels:")
        for line in format_metrics(result.metrics):
            click.echo(line)
    for note in result.notes:
        click.echo(f"note: {note}")
    summary(result.line())


SETTING_CHOICES = (*SETTINGS, "both")


def _settings_to_run(setting: str | None, gold: str | None) -> tuple[str, ...]:
    """The settings a run simulates: --setting, else ActiveLearningConfig.simulate_gold_setting with --gold,
    else from scratch (the synthetic pool has no weak labels; a dataset version keeps today's experiment)."""
    if setting is None:
        setting = ActiveLearningConfig().simulate_gold_setting if gold is not None else FROM_SCRATCH
    if setting not in SETTING_CHOICES:
        raise click.UsageError(f"setting {setting!r} is unknown: expected one of {', '.join(SETTING_CHOICES)}")
    return SETTINGS if setting == "both" else (setting,)


def _simulation_data(gold: str | None, payloads: str | None, test_share: float | None, synthetic: int | None,
                     version: int | None, train_config: TrainConfig, label_config: LabelConfig,
                     stream: int) -> SimulationData:
    settings = ActiveLearningConfig()
    if gold is not None:
        return gold_data(gold, settings.simulate_test_share if test_share is None else test_share,
                         payloads=payloads, background=settings.simulate_weak_background, label_config=label_config,
                         stream=stream)
    if synthetic is not None:
        return synthetic_data(synthetic)
    return dataset_data(InfraConfig().database_url, train_config.version if version is None else version)


def _setting_line(setting: str, figures: dict) -> str:
    finals = ", ".join(f"{s} {f:.3f}" for s, f in figures["final_f1"].items())
    ratio = figures["uncertainty_labels_over_random"]
    reach = ("never reached random's final F1" if ratio is None and figures["random_final_f1"] is not None
             else "no ratio" if ratio is None else f"{ratio:.2f} x random's labels to reach its final F1")
    line = f"{setting}: final F1 {finals} at {figures['final_labels']} labels; {UNCERTAINTY}: {reach}"
    others = {s: r for s, r in figures.get("labels_over_random", {}).items() if s != UNCERTAINTY}
    if others:
        line += " (" + ", ".join(f"{s} {'never' if r is None else f'{r:.2f} x'}" for s, r in others.items()) + ")"
    if setting == WORKFLOW:
        line += f"; weak labels alone F1 {figures['weak_only_f1']:.3f}"
    return line


@al.command("simulate")
@click.option("--version", "version", type=click.IntRange(min=0), default=None,
              help="Pool: the gold-labelled rows of train_dataset_<version>, tested on test_dataset_<version>'s "
                   "(default: DatasetConfig.version, unless --synthetic or --gold).")
@click.option("--synthetic", type=click.IntRange(min=20), default=None, metavar="N",
              help="Pool: N synthetic tweets (deduplicated, a quarter kept as the test set), the generator's "
                   "truth as the annotator; needs no database.")
@click.option("--gold", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Pool: a labelled file (TSV, CSV or JSONL, as ssp evaluate reads), split stratified by label "
                   "and kind into a pool and a fixed test set, ambiguous rows dropped; needs no database.")
@click.option("--payloads", type=click.Path(dir_okay=False, exists=True), default=None, metavar="JSONL",
              help="With --gold: raw payloads joined to the file's rows by id, for rows without text.")
@click.option("--setting", type=click.Choice(SETTING_CHOICES), default=None,
              help="from_scratch: gold labels only; workflow: Snorkel's weak labels on the pool, each asked row's "
                   "gold label overriding its weak one, from 0 gold labels; both (default with --gold: "
                   "ActiveLearningConfig.simulate_gold_setting; otherwise from_scratch).")
@click.option("--test-share", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
              help="With --gold: the share kept as the test set (default: ActiveLearningConfig.simulate_test_share).")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Rounds of asking (default: ActiveLearningConfig.simulate_rounds).")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Labels asked per round (default: ActiveLearningConfig.simulate_batch).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Repetitions with different initial labels (default: ActiveLearningConfig.simulate_seeds).")
@click.option("--initial", type=click.IntRange(min=1), default=None,
              help="Random labels to start from, the same for every strategy of a seed; from_scratch only "
                   "(default: ActiveLearningConfig.simulate_initial).")
@click.option("--strategy", "strategies", multiple=True, default=("least_confidence", "random"), show_default=True,
              type=click.Choice(STRATEGIES),
              help="Strategies to compare (repeat the option); the headline ratio needs least_confidence and random.")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs per round, no early stopping; the architecture comes from TrainConfig "
                   "(default: ActiveLearningConfig.simulate_epochs). A workflow with a stream trains as ssp "
                   "train does instead (TrainConfig's epochs, early stopping on the stream's held-out rows).")
@click.option("--stream", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --gold, the workflow setting: N synthetic posts (deduplicated) stand for the platform's "
                   "stream, weak-labelled, training beside the pool as the dataset does in ssp train; 0: the "
                   "pool alone (default: ActiveLearningConfig.simulate_workflow_stream).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for learning_curves.csv and learning_curves.png (default: $SSP_STATE_DIR/active_learning); "
                   "with two settings, learning_curves_<setting>.csv/.png.")
def simulate_command(version: int | None, synthetic: int | None, gold: str | None, payloads: str | None,
                     setting: str | None, test_share: float | None, rounds: int | None, batch: int | None,
                     seeds: int | None, initial: int | None, strategies: tuple[str, ...], epochs: int | None,
                     stream: int | None, out_dir: str | None) -> None:
    """The learning-curve experiment: uncertainty sampling against random sampling, a labelled pool as the annotator.

    Each round trains the classifier on the labelled rows (workflow: on the pool's weak labels,
    the labelled rows' gold labels overriding them), lets each strategy pick --batch more from the
    pool, and measures F1 (AI) on a fixed gold test set. Writes learning_curves.csv (strategy,
    seed, round, labels, f1) and learning_curves.png (mean F1 with a band of one standard deviation
    over seeds, against the number of labels). The last line printed is one JSON object;
    uncertainty_labels_over_random is the labels least_confidence's mean curve needs to reach
    random's final mean F1, over random's final label count (null if it never does). With both
    settings, the object holds one such object per setting under "settings".
    """
    _quiet_tensorflow()
    from ssp.progress import progress_bar, summary

    if version is not None and synthetic is not None:
        raise click.UsageError("give --version or --synthetic, not both")
    if gold is not None and (version is not None or synthetic is not None):
        raise click.UsageError("give --gold or --version or --synthetic, one pool only")
    if gold is None and (payloads is not None or test_share is not None or stream is not None):
        raise click.UsageError("--payloads, --test-share and --stream go with --gold")
    to_run = _settings_to_run(setting, gold)
    settings = ActiveLearningConfig()
    rounds = settings.simulate_rounds if rounds is None else rounds
    batch = settings.simulate_batch if batch is None else batch
    seeds = settings.simulate_seeds if seeds is None else seeds
    initial = settings.simulate_initial if initial is None else initial
    epochs = settings.simulate_epochs if epochs is None else epochs
    out = Path(out_dir) if out_dir else default_state_dir() / "active_learning"
    if stream is None:
        stream = settings.simulate_workflow_stream if WORKFLOW in to_run else 0
    train_config, label_config = TrainConfig(), LabelConfig()
    start = time.monotonic()
    results = {}
    # a TrainingDataError is a ValueError that names its input
    with reported("reading the dataset tables", ValueError, OSError):
        data = _simulation_data(gold, payloads, test_share, synthetic, version, train_config, label_config, stream)
        out.mkdir(parents=True, exist_ok=True)
        total = len(to_run) * trainings(strategies, rounds, seeds)
        with progress_bar(f"simulating {' and '.join(to_run)} on {data.source}", total) as advance:
            for name in to_run:
                results[name] = simulate(data, strategies, rounds=rounds, batch=batch, seeds=seeds, initial=initial,
                                         config=round_config(name, data, train_config, epochs),
                                         on_round=lambda *_: advance(), setting=name)
    per_setting, lines = {}, []
    for name, result in results.items():
        csv_name, png_name = output_names(name, both=len(results) > 1)
        write_csv(result, out / csv_name)
        plot_learning_curves(result, out / png_name, f"{name.replace('_', ' ')} on {data.source}: {result.seeds} "
                                                     f"seed(s), {result.batch} labels a round")
        per_setting[name] = {**result.figures(), "csv": str(out / csv_name), "png": str(out / png_name)}
        lines.append(_setting_line(name, per_setting[name]))
    seconds = round(time.monotonic() - start, 1)
    first = next(iter(results.values()))
    figures = ({**per_setting[to_run[0]]} if len(results) == 1 else {"settings": per_setting})
    figures.update(source=data.source, **data.details, seconds=seconds)
    summary(f"simulated {len(first.strategies)} strategies x {first.seeds} seeds x {first.rounds} rounds on "
            f"{first.pool_size} pool / {first.test_size} test tweets in {seconds:.1f} s: {'; '.join(lines)}; "
            f"wrote {out / output_names(to_run[0], len(results) > 1)[0]}")
    click.echo(json.dumps(figures))
